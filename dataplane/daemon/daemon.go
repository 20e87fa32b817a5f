// Package daemon assembles a running gvs-dataplane from its configuration:
// it opens the ports with their drivers and their KNI devices, builds the
// dataplane, applies the configured interfaces, addresses, routes and
// neighbours through the same control methods the API uses, watches the
// kernel's KNI addresses and serves the control API.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/apiserver"
	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/kni"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/afpacket"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp"
	"github.com/gvs-lb/gvs/dataplane/port/mem"
	"github.com/gvs-lb/gvs/internal/affinity"
	"github.com/gvs-lb/gvs/internal/logging"
	"github.com/gvs-lb/gvs/internal/unixsock"
)

// Daemon is a running dataplane with its API.
type Daemon struct {
	Log    *zap.Logger
	DP     *dataplane.Dataplane
	ports  []port.Port
	knis   []*kni.Device
	grpc   *grpc.Server
	cancel context.CancelFunc
	socket string
	cfg    *config.Config // the file the dataplane runs with (Reload diffs against it)
	// reloadMu serialises reloads (SIGHUP, the API); path is the file
	// gvs-dataplane was started with.
	reloadMu sync.Mutex
	path     string
	// Exit ends the process after a crash (os.Exit; tests replace it).
	Exit func(code int)
}

// NewLogger builds the zap logger the config asks for.
func NewLogger(c config.Log) (*zap.Logger, error) { return logging.New(c.Level, c.Format, c.File) }

// OpenPort opens one configured port with its driver; afxdp ports attach
// the XDP fast path as ipvs.xdp_offload says. u is the port's part in the
// UMEM sharing (umemPlan); share is the open port whose UMEM it shares.
func OpenPort(p config.Port, workers int, ipvs config.IPVS, u umemPart, share port.Port) (port.Port, error) {
	pc := port.Config{Name: p.Name, Device: p.Device, Queues: p.Queues, RxRing: p.RxRing, TxRing: p.TxRing,
		FrameCount: p.Frames, XDPMode: p.XDPMode, ZeroCopy: p.ZeroCopy,
		XDPOffload: ipvs.XDPOffload, XDPOffloadEntries: ipvs.XDPOffloadEntries}
	if u.frames > 0 {
		pc.FrameCount = u.frames
	}
	if share != nil {
		pc.Share = share
	}
	switch p.Driver {
	case "afxdp":
		return afxdp.Open(pc)
	case "afpacket":
		return afpacket.Open(pc)
	case "mem":
		return mem.New(pc, net.HardwareAddr{0x02, 0x47, 0x56, 0x53, 0, byte(len(p.Name))}), nil
	case "dpdk":
		return openDPDK(pc)
	}
	return nil, fmt.Errorf("port %s: driver %q: %w", p.Name, p.Driver, port.ErrNotSupported)
}

// Start opens everything and starts forwarding. On error, whatever was
// opened is closed again.
func Start(c *config.Config, log *zap.Logger) (_ *Daemon, err error) {
	d := &Daemon{Log: log, Exit: os.Exit}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := checkHost(c); err != nil {
		return nil, err
	}
	if len(c.Workers.MasterCores) > 0 {
		if err := affinity.PinProcess(c.Workers.MasterCores); err != nil {
			return nil, fmt.Errorf("workers.master_cores: %w", err)
		}
	}
	if err := startDPDK(c); err != nil {
		return nil, err
	}
	umem := umemPlan(c)
	var specs []dataplane.PortSpec
	var kniIdx []int
	learn := map[int]string{} // KNI ifindex → port, for kni.learn_routes
	for _, pc := range c.Ports {
		if pc.Driver == "afxdp" || pc.Driver == "afpacket" {
			// a crashed predecessor's tc ingress drop (afpacket) would
			// keep the kernel off a device GVS no longer asks it to leave
			dev := pc.Device
			if dev == "" {
				dev = pc.Name
			}
			if n, err := afpacket.RemoveStaleIngressDrop(dev); err != nil {
				return nil, fmt.Errorf("port %s: %w", pc.Name, err)
			} else if n > 0 {
				log.Warn("removed a tc ingress drop left by a previous gvs-dataplane", zap.String("device", dev))
			}
		}
		u := umem[len(d.ports)]
		var share port.Port
		if u.owner >= 0 {
			share = d.ports[u.owner]
		}
		p, err := OpenPort(pc, c.Workers.Count, c.IPVS, u, share)
		if err != nil && share != nil {
			log.Warn("port cannot share the UMEM of another port's queues: it gets its own, and frames between them are copied",
				zap.String("port", pc.Name), zap.String("with", share.Name()), zap.Error(err))
			p, err = OpenPort(pc, c.Workers.Count, c.IPVS, umemPart{owner: -1}, nil)
		}
		if err != nil {
			return nil, err
		}
		if err := offloadPort(p, d.ports, c.IPVS, log); err != nil {
			p.Close()
			return nil, fmt.Errorf("port %s: %w", pc.Name, err)
		}
		d.ports = append(d.ports, p)
		spec := dataplane.PortSpec{Port: p, KNIRate: pc.KNI.RatePPS, KNIControlRate: pc.KNI.ControlRatePPS}
		if pc.KNI.On() {
			k, err := kni.Open(pc.KNI.Name, p.MAC(), p.MTU())
			if err != nil {
				return nil, fmt.Errorf("port %s: %w", pc.Name, err)
			}
			d.knis = append(d.knis, k)
			kniIdx = append(kniIdx, k.Index())
			spec.KNI = k
			if pc.KNI.LearnRoutes {
				learn[k.Index()] = pc.Name
			}
		}
		specs = append(specs, spec)
		f := []zap.Field{zap.String("port", pc.Name), zap.String("driver", pc.Driver),
			zap.String("device", pc.Device), zap.Int("queues", p.NumQueues()), zap.String("mac", p.MAC().String())}
		if x, ok := p.(*afxdp.Port); ok && x.SharedUMEM() {
			f = append(f, zap.String("umem", "shared with "+c.Ports[umem[len(d.ports)-1].owner].Name))
		}
		log.Info("port opened", f...)
	}
	spCfg, err := c.IPVS.SynProxy.Config()
	if err != nil {
		return nil, fmt.Errorf("ipvs.synproxy: %w", err)
	}
	uoaMode, err := dataplane.ParseUOAMode(c.IPVS.UOAMode)
	if err != nil {
		return nil, fmt.Errorf("ipvs.uoa_mode: %w", err)
	}
	dp, err := dataplane.New(dataplane.Options{
		Workers: c.Workers.Count, Cores: c.Workers.Cores, Idle: dataplane.IdleMode(c.Workers.Idle),
		Burst: c.Workers.Burst, DrainInterval: time.Duration(c.Workers.DrainInterval), RTPriority: c.Workers.Priority(),
		Forward4: c.Forwarding.IPv4, Forward6: c.Forwarding.IPv6,
		NeighReachable: time.Duration(c.Neighbour.Reachable), MaxPending: c.Neighbour.MaxPending, Logger: log,
		NeighMaxEntries: c.Neighbour.MaxEntries, ConnCapacity: c.IPVS.ConnCapacity, ConnExpirePerLoop: c.IPVS.ExpirePerLoop, SessionHighWater: c.IPVS.SessionHighWater,
		PersistCapacity: c.IPVS.PersistCapacity, ExpireQuiescentTemplate: c.IPVS.ExpireQuiescentTemplate,
		NoExpireReset: !c.IPVS.ResetsOnExpire(),
		SynProxy:      &spCfg, UOAMaxTrail: c.IPVS.UOAMaxTrail, UOAMode: uoaMode,
		RSSPorts: c.IPVS.PortSelection == "rss", PrefaultConns: true, Timeouts: c.IPVS.SessionTimeouts(),
		CaptureRate: c.Capture.Rate, CaptureRing: c.Capture.Ring,
		OnCrash: d.Crash,
	}, specs)
	if err != nil {
		return nil, err
	}
	d.DP = dp
	if err := Apply(dp, c); err != nil {
		return nil, err
	}
	d.cfg = c
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if len(kniIdx) > 0 {
		onErr := func(err error) { log.Warn("KNI address watch", zap.Error(err)) }
		if err := kni.WatchAddrs(ctx, kniIdx, dp.SetKNIAddrs, kni.WatchOptions{OnError: onErr}); err != nil {
			return nil, err
		}
	}
	if len(learn) > 0 {
		if err := learnRoutes(ctx, dp, learn, log); err != nil {
			return nil, err
		}
	}
	if err := dp.Start(); err != nil {
		return nil, err
	}
	srv := apiserver.New(dp)
	srv.SetReload(func(path string, check bool) (string, []string, error) {
		file, changes, err := d.ReloadFile(path, check)
		if err != nil && !check {
			log.Warn("API reload refused; the running configuration stays", zap.Error(err))
		}
		return file, changes, err
	})
	g, err := srv.Listen(c.API.Socket, apiserver.ListenOptions{Group: c.API.Group})
	if err != nil {
		return nil, err
	}
	d.grpc, d.socket = g, c.API.Socket
	log.Info("api listening", zap.String("socket", c.API.Socket))
	return d, nil
}

// Crash is the dataplane's crash handler: the report is already logged
// (with the frame and the stack); it removes the API socket, so that
// clients see "not running" rather than a dead socket, and exits with
// status 2. The ports' kernel-side state (tc filters, XDP programs) is
// left to the next start, which removes what it finds.
func (d *Daemon) Crash(r dataplane.CrashReport) {
	d.Log.Error("exiting after a crash", zap.String("where", r.Where), zap.String("panic", fmt.Sprint(r.Value)))
	d.removeSocket()
	d.Log.Sync()
	d.Exit(2)
}

// removeSocket unlinks the API socket if it is still a socket.
func (d *Daemon) removeSocket() {
	if d.socket != "" {
		unixsock.RemoveIfSocket(d.socket)
	}
}

// Close stops forwarding and releases ports, KNI devices and the socket.
func (d *Daemon) Close() {
	if d.grpc != nil {
		d.grpc.Stop()
		d.removeSocket()
	}
	if d.cancel != nil {
		d.cancel()
	}
	if d.DP != nil {
		d.DP.Stop()
	}
	for _, k := range d.knis {
		k.Close()
	}
	var errs []error
	for _, p := range d.ports {
		if err := p.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		d.Log.Warn("closing ports", zap.Error(err))
	}
}

// umemPart is a port's part in the sharing of UMEMs (workers.umem shared):
// owner is the index of the port whose UMEM it shares (-1: its own), and
// frames, when not 0, the frame count to open it with (a UMEM's owner
// holds the frames of all its sharers).
type umemPart struct {
	owner  int
	frames int
}

// umemPlan gives the afxdp ports one UMEM per queue, registered on the
// first of them, when workers.umem is shared (every port has a queue per
// worker, so queue i of each is worker i's).
func umemPlan(c *config.Config) []umemPart {
	plan := make([]umemPart, len(c.Ports))
	first := -1
	for i, p := range c.Ports {
		plan[i].owner = -1
		if p.Driver != "afxdp" || c.Workers.UMEM != "shared" {
			continue
		}
		frames := p.Frames
		if frames == 0 {
			frames = afxdp.DefaultFrameCount
		}
		if first < 0 {
			first = i
			plan[i].frames = frames
			continue
		}
		plan[i].owner = first
		plan[first].frames += frames
	}
	return plan
}
