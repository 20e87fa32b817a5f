package ipvs

import (
	"strings"
	"testing"
)

// A change whose table does not build (here a scheduler that cannot be
// made, past the spec checks) leaves the model and the published table as
// they were: the next change starts from the old model.
func TestFailedBuildChangesNothing(t *testing.T) {
	m := NewManager(2)
	if err := m.AddService(ServiceSpec{Key: k80, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddDest(k80, fnat(rs1, 1)); err != nil {
		t.Fatal(err)
	}
	tbl := m.Table()
	err := m.update(func(c *state) error {
		_, s := c.find(k80)
		s.spec.Sched = "nope"
		s.dests = append(s.dests, &Dest{ID: c.id(), Spec: fnat(rs2, 1)})
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "service TCP 10.1.0.100:80: scheduler nope") {
		t.Fatalf("update: %v", err)
	}
	if m.Table() != tbl {
		t.Fatal("a failed build published a table")
	}
	// the model is the old one: rr with one destination, ids not consumed
	if err := m.AddDest(k80, fnat(rs2, 1)); err != nil {
		t.Fatalf("the refused destination stayed in the model: %v", err)
	}
	svc := m.Table().Service(k80)
	if svc.Spec.Sched != "rr" || len(svc.Dests) != 2 || svc.Dests[1].ID != tbl.MaxID+1 {
		t.Errorf("model after a failed build: sched %s, %d dests, id %d (max before %d)", svc.Spec.Sched, len(svc.Dests),
			svc.Dests[1].ID, tbl.MaxID)
	}
	if m.Table().Gen != tbl.Gen+1 {
		t.Errorf("generation %d after %d: a failed build counted", m.Table().Gen, tbl.Gen)
	}
}
