package daemon

import (
	"go.uber.org/zap"

	"github.com/gvs-lb/gvs/dataplane/config"
	"github.com/gvs-lb/gvs/dataplane/port"
	"github.com/gvs-lb/gvs/dataplane/port/afxdp"
)

// offloadPort reports whether the XDP fast path is active on the port p
// just opened, and makes every afxdp port with the fast path an egress of
// every other one (opened before p), so an offloaded connection may leave
// by any of them. Non-afxdp ports and xdp_offload off pass through.
func offloadPort(p port.Port, opened []port.Port, ipvs config.IPVS, log *zap.Logger) error {
	x, ok := p.(*afxdp.Port)
	if !ok || ipvs.XDPOffload == "off" {
		return nil
	}
	on, why := x.Offload()
	if !on {
		log.Warn("XDP fast path not active", zap.String("port", p.Name()), zap.String("why", why))
		return nil
	}
	log.Info("XDP fast path attached", zap.String("port", p.Name()), zap.String("mode", x.AttachMode()))
	for _, o := range opened {
		ox, ok := o.(*afxdp.Port)
		if !ok || ox == x || ox.Fast() == nil {
			continue
		}
		if err := ox.Fast().AddEgress(x.Ifindex()); err != nil {
			return err
		}
		if err := x.Fast().AddEgress(ox.Ifindex()); err != nil {
			return err
		}
	}
	return nil
}
