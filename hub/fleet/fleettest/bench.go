package fleettest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet"
)

// benchPoll is how often the benchmark looks for an answer: fine-grained,
// since it measures start-up times of about a second.
const benchPoll = 10 * time.Millisecond

// BenchCreateToHealthy creates and starts n instances at once and times
// each from its Create call until its port answers GET / (metric
// "s-http") and until the admin API answers /settings with the admin
// credentials, login included (metric "s-healthy"); it reports the mean and
// the slowest of each in seconds. Removal is not timed.
func BenchCreateToHealthy(b *testing.B, h Harness, n int) {
	d := NewDriver(b, h, NewHubID(), b.TempDir())
	var httpSum, healthySum, httpMax, healthyMax float64
	for range b.N {
		specs := make([]fleet.Spec, n)
		for i := range specs {
			specs[i] = NewSpec(b, "bench")
		}
		b.StartTimer()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, spec := range specs {
			wg.Go(func() {
				tHTTP, tHealthy, err := createToHealthy(d, spec)
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				httpSum += tHTTP.Seconds()
				healthySum += tHealthy.Seconds()
				httpMax = max(httpMax, tHTTP.Seconds())
				healthyMax = max(healthyMax, tHealthy.Seconds())
			})
		}
		wg.Wait()
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		for _, spec := range specs {
			if err := d.Remove(ctx, spec.InstanceID); err != nil {
				b.Errorf("Remove: %v", err)
			}
		}
		cancel()
	}
	count := float64(b.N * n)
	b.ReportMetric(httpSum/count, "s-http/inst")
	b.ReportMetric(httpMax, "s-http-max")
	b.ReportMetric(healthySum/count, "s-healthy/inst")
	b.ReportMetric(healthyMax, "s-healthy-max")
}

// createToHealthy creates and starts one instance and returns how long
// until its port answered and until its admin API did.
func createToHealthy(d fleet.Driver, spec fleet.Spec) (tHTTP, tHealthy time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	t0 := time.Now()
	if _, err := d.Create(ctx, spec); err != nil {
		return 0, 0, fmt.Errorf("create: %w", err)
	}
	if err := d.Start(ctx, spec.InstanceID); err != nil {
		return 0, 0, fmt.Errorf("start: %w", err)
	}
	err = poll(ctx, func() error {
		code, _, err := get(adminURL(spec.Port) + "/")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET / = %d", code)
		}
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: port: %w", spec.InstanceID, err)
	}
	tHTTP = time.Since(t0)
	c, err := newClient(spec)
	if err != nil {
		return 0, 0, err
	}
	if err := poll(ctx, func() error { _, err := c.Settings(ctx); return err }); err != nil {
		return 0, 0, fmt.Errorf("%s: admin API: %w", spec.InstanceID, err)
	}
	return tHTTP, time.Since(t0), nil
}

// poll calls cond every benchPoll until it succeeds or ctx ends.
func poll(ctx context.Context, cond func() error) error {
	tick := time.NewTicker(benchPoll)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}
