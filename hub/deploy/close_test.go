package deploy

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/testenv"
)

// slowApplier is a raftless applier whose deployment writes, once
// entered, finish only after the caller's context ended and the test
// released them: a Raft Apply already committed runs to its end whatever
// the caller does.
type slowApplier struct {
	*raftless
	entered chan struct{}
	release chan struct{}
	once    sync.Once

	mu     sync.Mutex
	events []string
}

func (a *slowApplier) Apply(ctx context.Context, cmd catalog.Command) (any, error) {
	if cmd.Type == catalog.CmdPutDeployment {
		a.once.Do(func() { close(a.entered) })
		<-ctx.Done()
		<-a.release
		defer a.record("apply finished")
	}
	return a.raftless.Apply(ctx, cmd)
}

func (a *slowApplier) record(e string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

// TestRunJoinsDeployments: Run returns only after the deployments it
// drives have ended, so the hub never closes Raft and the store under an
// Apply in flight (it used to return at once, leaving drive goroutines
// behind).
func TestRunJoinsDeployments(t *testing.T) {
	bus, holds := busAndHolds(t)

	r := &raftless{state: catalog.NewState()}
	bg := context.Background()
	if _, err := r.Apply(bg, catalog.UpsertInstance(catalog.Instance{ID: "i1", Name: "app"})); err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(Spec{BlueID: "i1", GreenID: "i1-g", GreenName: "app.g"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(bg, catalog.PutDeploymentSpec(catalog.DeploymentSpec{DeploymentID: "d1", InstanceID: "i1", Spec: spec})); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(bg, catalog.PutDeployment(catalog.Deployment{ID: "d1", InstanceID: "i1", Status: catalog.DeploymentPending})); err != nil {
		t.Fatal(err)
	}
	a := &slowApplier{raftless: r, entered: make(chan struct{}), release: make(chan struct{})}
	o := New(Config{}, Deps{Catalog: r.state, Applier: a, Bus: bus, Coord: holds, IsLeader: func() bool { return true }})

	ctx, cancel := context.WithCancel(bg)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		o.Run(ctx)
		a.record("run returned")
	}()
	select {
	case <-a.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the deployment was not driven")
	}
	cancel()
	// Give an early return the chance to happen before the Apply ends; a
	// correct Run waits for the release below either way.
	select {
	case <-returned:
	case <-time.After(300 * time.Millisecond):
	}
	close(a.release)
	testenv.WaitFor(t, 30*time.Second, "Run returned", func() error {
		select {
		case <-returned:
			return nil
		default:
			return context.DeadlineExceeded
		}
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.events) < 2 || a.events[0] != "apply finished" {
		t.Fatalf("Run returned with a deployment's Apply in flight: %v", a.events)
	}
}
