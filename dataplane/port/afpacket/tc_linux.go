//go:build linux

package afpacket

// Keeping the kernel stack off the port's device: a tc ingress filter that
// drops every frame after the packet taps (AF_PACKET) have seen it.
//
// The filter sits on the ingress hook of the device's clsact qdisc (or of an
// existing ingress qdisc, which offers the same hook), in front of any filter
// already there. It is, in order of preference:
//   - cls_bpf in direct-action mode with the one-instruction classic BPF
//     program "ret #TC_ACT_SHOT": needs only the bpf classifier, no action
//     module and no bpf(2) program load (kernels built without matchall and
//     gact, like this project's CI kernel, have it);
//   - matchall with a gact drop action.
//
// The filter is flagged skip_hw: a NIC with tc offload must not drop frames
// before the host, and so the taps, see them. Its handle marks it as GVS's,
// so a filter left behind by a process that died without Close is found and
// replaced rather than stacked. What Open added is recorded in ingressDrop
// for Close.
//
// netlink.Handle builds neither filter with the flags needed, so filter
// requests are built here and sent on a netlink socket of our own, opened in
// the caller's namespace at Open so that Close works from any thread.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dropFilterHandle is the handle of GVS's drop filter ("gv", 1).
const dropFilterHandle = 0x67760001

// ingressDrop records the tc objects Open added to a device.
type ingressDrop struct {
	ifindex    int
	sock       *nl.SocketHandle
	addedQdisc bool
	kind       string // TCA_KIND of the filter: "bpf" or "matchall"
	prio       uint16
}

// installIngressDrop adds the drop filter to link, creating a clsact qdisc
// if the device has no ingress hook yet.
func installIngressDrop(h *netlink.Handle, link netlink.Link) (*ingressDrop, error) {
	d := &ingressDrop{ifindex: link.Attrs().Index}
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	d.sock = &nl.SocketHandle{Socket: s}
	qdiscs, err := h.QdiscList(link)
	if err != nil {
		d.sock.Close()
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	hasHook := false
	for _, q := range qdiscs {
		if q.Attrs().Parent == netlink.HANDLE_INGRESS { // clsact or ingress
			hasHook = true
		}
	}
	if !hasHook {
		if err := h.QdiscAdd(clsact(d.ifindex)); err != nil {
			d.sock.Close()
			return nil, fmt.Errorf("add clsact qdisc: %w", err)
		}
		d.addedQdisc = true
	}
	if err := d.addFilter(h, link); err != nil {
		if d.addedQdisc {
			h.QdiscDel(clsact(d.ifindex))
		}
		d.sock.Close()
		return nil, err
	}
	return d, nil
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
}

// addFilter picks a priority in front of the filters already on the hook
// and adds the drop filter there.
func (d *ingressDrop) addFilter(h *netlink.Handle, link netlink.Link) error {
	filters, err := h.FilterList(link, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return fmt.Errorf("list ingress filters: %w", err)
	}
	var front uint16
	for _, f := range filters {
		a := f.Attrs()
		if a.Handle == dropFilterHandle {
			if err := d.delFilter(f.Type(), a.Priority, a.Protocol); err != nil && !gone(err) {
				return fmt.Errorf("remove stale GVS drop filter (%s, priority %d): %w", f.Type(), a.Priority, err)
			}
			continue
		}
		if front == 0 || a.Priority < front {
			front = a.Priority
		}
	}
	d.prio = 1
	if front != 0 {
		if front == 1 {
			return errors.New("an ingress filter already holds priority 1, the drop filter cannot go in front of it; remove it or keep the kernel's ingress (Options.KeepKernelIngress)")
		}
		d.prio = front - 1
	}

	errBPF := d.newFilter("bpf", bpfDropOptions)
	if errBPF == nil {
		d.kind = "bpf"
		return nil
	}
	errMatchall := d.newFilter("matchall", matchallDropOptions)
	if errMatchall == nil {
		d.kind = "matchall"
		return nil
	}
	return fmt.Errorf("add drop filter at ingress priority %d: cls_bpf: %w; matchall with gact: %w", d.prio, errBPF, errMatchall)
}

// bpfDropOptions: cls_bpf, direct action, classic BPF "ret #TC_ACT_SHOT".
func bpfDropOptions(opts *nl.RtAttr) error {
	insn := make([]byte, 8) // struct sock_filter {u16 code; u8 jt, jf; u32 k}
	binary.NativeEndian.PutUint16(insn[0:], unix.BPF_RET|unix.BPF_K)
	binary.NativeEndian.PutUint32(insn[4:], uint32(netlink.TC_ACT_SHOT))
	opts.AddRtAttr(nl.TCA_BPF_OPS_LEN, nl.Uint16Attr(1))
	opts.AddRtAttr(nl.TCA_BPF_OPS, insn)
	opts.AddRtAttr(nl.TCA_BPF_FLAGS, nl.Uint32Attr(nl.TCA_BPF_FLAG_ACT_DIRECT))
	opts.AddRtAttr(nl.TCA_BPF_FLAGS_GEN, nl.Uint32Attr(nl.TCA_CLS_FLAGS_SKIP_HW))
	return nil
}

// matchallDropOptions: matchall with a gact drop action.
func matchallDropOptions(opts *nl.RtAttr) error {
	opts.AddRtAttr(nl.TCA_MATCHALL_FLAGS, nl.Uint32Attr(nl.TCA_CLS_FLAGS_SKIP_HW))
	acts := opts.AddRtAttr(nl.TCA_MATCHALL_ACT, nil)
	drop := &netlink.GenericAction{ActionAttrs: netlink.ActionAttrs{Action: netlink.TC_ACT_SHOT}}
	return netlink.EncodeActions(acts, []netlink.Action{drop})
}

// newFilter adds the drop filter of the given kind at d.prio.
func (d *ingressDrop) newFilter(kind string, options func(*nl.RtAttr) error) error {
	req := d.request(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL, kind, d.prio, unix.ETH_P_ALL)
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	if err := options(opts); err != nil {
		return err
	}
	req.AddData(opts)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// delFilter deletes GVS's filter of kind at (prio, proto).
func (d *ingressDrop) delFilter(kind string, prio, proto uint16) error {
	_, err := d.request(unix.RTM_DELTFILTER, 0, kind, prio, proto).Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func (d *ingressDrop) request(typ, flags int, kind string, prio, proto uint16) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(typ, flags|unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: d.sock}
	req.AddData(&nl.TcMsg{
		Family:  nl.FAMILY_ALL,
		Ifindex: int32(d.ifindex),
		Handle:  dropFilterHandle,
		Parent:  netlink.HANDLE_MIN_INGRESS,
		Info:    netlink.MakeHandle(prio, htons(proto)),
	})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated(kind)))
	return req
}

// remove takes away what installIngressDrop added. A device that has
// disappeared took the objects with it and is not an error.
func (d *ingressDrop) remove(h *netlink.Handle) error {
	defer d.sock.Close()
	if d.addedQdisc {
		// Deleting a clsact that is no longer there fails with EINVAL
		// ("invalid handle": the ingress hook is back to its default).
		if err := h.QdiscDel(clsact(d.ifindex)); err != nil && !gone(err) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("remove clsact qdisc: %w", err)
		}
		return nil
	}
	if err := d.delFilter(d.kind, d.prio, unix.ETH_P_ALL); err != nil && !gone(err) {
		return fmt.Errorf("remove %s drop filter at ingress priority %d: %w", d.kind, d.prio, err)
	}
	return nil
}

// gone reports errors meaning the object or its device no longer exists.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)
}

// RemoveStaleIngressDrop removes a drop filter that a GVS process which
// died left on device dev (recognised by its handle), so that the kernel
// sees the device's frames again whatever driver or option the new start
// uses. It reports how many filters it removed; the clsact qdisc is left
// (it is harmless and may be someone else's).
func RemoveStaleIngressDrop(dev string) (int, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return 0, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err != nil {
		return 0, fmt.Errorf("device %s: %w", dev, err)
	}
	filters, err := h.FilterList(link, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		// no ingress hook at all: nothing was left
		return 0, nil
	}
	removed := 0
	for _, f := range filters {
		a := f.Attrs()
		if a.Handle != dropFilterHandle {
			continue
		}
		s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
		if err != nil {
			return removed, fmt.Errorf("open netlink socket: %w", err)
		}
		d := &ingressDrop{ifindex: link.Attrs().Index, sock: &nl.SocketHandle{Socket: s}}
		err = d.delFilter(f.Type(), a.Priority, a.Protocol)
		d.sock.Close()
		if err != nil && !gone(err) {
			return removed, fmt.Errorf("remove stale GVS drop filter on %s (%s, priority %d): %w", dev, f.Type(), a.Priority, err)
		}
		removed++
	}
	return removed, nil
}
