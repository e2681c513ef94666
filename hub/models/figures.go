package models

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Live figures are each hub's own: SLA routing on a hub uses the latency
// this hub measures (its path to the provider), without waiting on other
// hubs. So that any hub's registry can show every hub's view, each hub
// publishes its figures to coord every PublishEvery, under a key that
// expires when the hub stops publishing.
const (
	PublishEvery  = 5 * time.Second
	FiguresWindow = 5 * time.Minute
	figuresPrefix = "llm:figures:"
	figuresTTL    = 6 * PublishEvery
)

// HubFigures are one hub's figures of every model it has called.
type HubFigures struct {
	Hub    string             `json:"hub"`
	At     time.Time          `json:"at"`
	Models map[string]Figures `json:"models"`
}

// LocalFigures returns this hub's figures over FiguresWindow.
func (g *Gateway) LocalFigures() HubFigures {
	hf := HubFigures{Hub: g.cfg.HubID, At: g.now().UTC(), Models: map[string]Figures{}}
	for _, m := range g.stats.Models() {
		hf.Models[m] = g.stats.Figures(m, FiguresWindow)
	}
	return hf
}

func (g *Gateway) publish(ctx context.Context) {
	if g.kv == nil || g.cfg.HubID == "" {
		return
	}
	t := time.NewTicker(PublishEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hf := g.LocalFigures()
		if len(hf.Models) == 0 {
			continue
		}
		b, _ := json.Marshal(hf)
		if err := g.kv.Set(ctx, figuresPrefix+g.cfg.HubID, b, figuresTTL); err != nil && ctx.Err() == nil {
			g.log.Warn("llm figures not published", "error", err)
		}
	}
}

// ClusterFigures returns the figures every hub published, this hub's
// current ones in place of what it last published.
func (g *Gateway) ClusterFigures(ctx context.Context) []HubFigures {
	out := []HubFigures{g.LocalFigures()}
	if g.kv == nil {
		return out
	}
	keys, err := g.kv.Keys(ctx, figuresPrefix)
	if err != nil {
		return out
	}
	for _, k := range keys {
		if strings.TrimPrefix(k, figuresPrefix) == g.cfg.HubID {
			continue
		}
		b, err := g.kv.Get(ctx, k)
		var hf HubFigures
		if err != nil || json.Unmarshal(b, &hf) != nil {
			continue
		}
		out = append(out, hf)
	}
	return out
}
