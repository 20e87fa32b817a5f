package ipvs

import (
	"testing"

	"github.com/gvs-lb/gvs/ipvs/sched"
)

// Every scheduler name builds through the manager (what ipvsadm -A -s
// sends); the hashing ones share one instance across workers, the others
// get one per worker.
func TestEverySchedulerPerWorker(t *testing.T) {
	for _, name := range sched.Names() {
		m := NewManager(3)
		if err := m.AddService(ServiceSpec{Key: k80, Sched: name}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m.AddDest(k80, fnat(rs1, 1))
		m.AddDest(k80, fnat(rs2, 2))
		svc := m.Table().Service(k80)
		if len(svc.Scheds) != 3 {
			t.Fatalf("%s: %d instances for 3 workers", name, len(svc.Scheds))
		}
		shared := svc.Scheds[0] == svc.Scheds[1] && svc.Scheds[1] == svc.Scheds[2]
		if shared != sched.Shared(name) {
			t.Errorf("%s: shared across workers = %v, want %v", name, shared, sched.Shared(name))
		}
		for w, s := range svc.Scheds {
			if s.Name() != name {
				t.Errorf("%s: worker %d runs %s", name, w, s.Name())
			}
			f := &sched.Flow{Src: rs1.Addr(), SrcPort: 1000, Dst: k80.Addr, DstPort: 80, Proto: 6}
			if d := s.Pick(f); d < 0 {
				t.Errorf("%s: worker %d: no dest", name, w)
			}
		}
	}
	// conhash's DPVS hash target travels in the scheduler flags
	m := NewManager(1)
	if err := m.AddService(ServiceSpec{Key: ServiceKey{Proto: UDP, Addr: k80.Addr, Port: 443}, Sched: "conhash", SchedFlags: []string{"qid"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddService(ServiceSpec{Key: k80, Sched: "dh", SchedFlags: []string{"flag-1"}}); err == nil {
		t.Fatal("dh with flag-1 accepted: dh has no fallback")
	}
}
