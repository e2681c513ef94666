package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/coord"
)

// verify runs the smoke tests against green and records each result in
// Deployment.Smoke; any failure fails the phase (and rolls back).
func (o *Orchestrator) verify(ctx context.Context, d *catalog.Deployment, spec *Spec) error {
	green, err := o.d.Catalog.Instance(spec.GreenID)
	if err != nil {
		return failure{err}
	}
	type test struct {
		name string
		run  func(context.Context) error
	}
	tests := []test{
		{"health", func(ctx context.Context) error { return o.eachReplica(ctx, green, o.smokeHealth) }},
		{"flows", func(ctx context.Context) error {
			return o.eachReplica(ctx, green, func(ctx context.Context, a catalog.Allocation) error {
				return o.smokeFlows(ctx, a, spec.GreenRev)
			})
		}},
	}
	if len(green.Nodes) > 0 {
		tests = append(tests, test{"nodes", func(ctx context.Context) error {
			return o.eachReplica(ctx, green, func(ctx context.Context, a catalog.Allocation) error {
				return o.smokeNodes(ctx, a, green.Nodes)
			})
		}})
	}
	if spec.Smoke.HTTP != nil {
		tests = append(tests, test{"http", func(ctx context.Context) error {
			return o.eachReplica(ctx, green, func(ctx context.Context, a catalog.Allocation) error {
				return smokeHTTP(ctx, a, *spec.Smoke.HTTP)
			})
		}})
	}
	if spec.Smoke.MQTT == nil || *spec.Smoke.MQTT {
		tests = append(tests, test{"mqtt", func(ctx context.Context) error {
			// Green's MQTT nodes connect and subscribe after the flows
			// deploy has returned; a single ping sent before green listens
			// is lost (QoS 1 to no subscriber) and failed the test, rolling
			// back a good deployment. Ping once a second until it answers.
			if err := o.awaitBus(ctx, green, o.cfg.SmokeTimeout-time.Second); err != nil {
				return fmt.Errorf("%w: green's flows are not connected to the hub bus", err)
			}
			return nil
		}})
	}
	tests = append(tests, test{"coord", func(ctx context.Context) error { return smokeCoord(ctx, o.d.Coord, d.ID) }})
	var results []SmokeResult
	var first error
	for i, t := range tests {
		tctx, cancel := context.WithTimeout(ctx, o.cfg.SmokeTimeout)
		start := o.now()
		err := t.run(tctx)
		cancel()
		r := SmokeResult{Name: t.name, OK: err == nil, Duration: o.now().Sub(start).Round(time.Millisecond).String()}
		if err != nil {
			r.Message = err.Error()
			if first == nil {
				first = fmt.Errorf("smoke test %s failed: %w", t.name, err)
			}
		}
		results = append(results, r)
		raw, _ := json.Marshal(results)
		o.bestEffort(ctx, d.ID, func(d *catalog.Deployment) {
			d.Smoke = raw
			d.Progress = max(d.Progress, phaseStart[catalog.PhaseVerify]+(i+1)*19/len(tests))
		})
	}
	if first != nil {
		return failure{first}
	}
	return nil
}

// eachReplica runs test against every replica of the row, naming the
// replica in a failure.
func (o *Orchestrator) eachReplica(ctx context.Context, row catalog.Instance, test func(context.Context, catalog.Allocation) error) error {
	as := o.d.Catalog.InstanceAllocations(row.ID)
	if len(as) == 0 {
		return fmt.Errorf("%s has no replica", row.Name)
	}
	for _, a := range as {
		if err := test(ctx, a); err != nil {
			return fmt.Errorf("replica %d on %s: %w", a.Replica, a.Hub, err)
		}
	}
	return nil
}

func (o *Orchestrator) smokeHealth(ctx context.Context, a catalog.Allocation) error {
	c, err := o.d.Fleet.Client(ctx, a)
	if err != nil {
		return err
	}
	return c.Health(ctx)
}

// smokeFlows checks that the replica reports the deployed flows and that
// its runtime holds flows.
func (o *Orchestrator) smokeFlows(ctx context.Context, a catalog.Allocation, sha string) error {
	if a.Observed.FlowsSHA != sha {
		return fmt.Errorf("runs flows %.12s, want %.12s", a.Observed.FlowsSHA, sha)
	}
	c, err := o.d.Fleet.Client(ctx, a)
	if err != nil {
		return err
	}
	f, err := c.GetFlows(ctx)
	if err != nil {
		return err
	}
	if len(f.Flows) == 0 {
		return fmt.Errorf("its runtime holds no flows")
	}
	return nil
}

// smokeNodes checks that the replica loaded every node package of its
// node set, without error.
func (o *Orchestrator) smokeNodes(ctx context.Context, a catalog.Allocation, pkgs []catalog.NodePackage) error {
	c, err := o.d.Fleet.Client(ctx, a)
	if err != nil {
		return err
	}
	sets, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		found := false
		for _, s := range sets {
			if s.Module != p.Name {
				continue
			}
			found = true
			if e := s.Error(); e != "" {
				return fmt.Errorf("node package %s@%s did not load: %s", p.Name, p.Version, e)
			}
			if s.Version != "" && s.Version != p.Version {
				return fmt.Errorf("node package %s runs version %s, want %s", p.Name, s.Version, p.Version)
			}
		}
		if !found {
			return fmt.Errorf("node package %s@%s is not installed in the runtime", p.Name, p.Version)
		}
	}
	return nil
}

func smokeHTTP(ctx context.Context, a catalog.Allocation, s SmokeHTTP) error {
	method := s.Method
	if method == "" {
		method = http.MethodGet
	}
	want := s.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	url := fmt.Sprintf("http://%s/%s", a.Address(), strings.TrimPrefix(s.Path, "/"))
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(s.Body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s answered %d, want %d", method, s.Path, resp.StatusCode, want)
	}
	if s.ExpectContains != "" && !strings.Contains(string(body), s.ExpectContains) {
		return fmt.Errorf("%s %s reply does not contain %q", method, s.Path, s.ExpectContains)
	}
	return nil
}

// smokeCoord writes, reads back and deletes a key, trying again every
// 250 ms until ctx ends: coordination failing over (a Redis master dying
// behind Sentinel) for a few seconds does not roll back a good green.
func smokeCoord(ctx context.Context, kv coord.KV, id string) error {
	for {
		err := smokeCoordOnce(ctx, kv, id)
		if err == nil || errors.Is(err, coord.ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func smokeCoordOnce(ctx context.Context, kv coord.KV, id string) error {
	key, val := "deploy/smoke/"+id, []byte(time.Now().UTC().Format(time.RFC3339Nano))
	if err := kv.Set(ctx, key, val, time.Minute); err != nil {
		return err
	}
	got, err := kv.Get(ctx, key)
	if err != nil {
		return err
	}
	if string(got) != string(val) {
		return fmt.Errorf("coord read back %q, wrote %q", got, val)
	}
	return kv.Delete(ctx, key)
}
