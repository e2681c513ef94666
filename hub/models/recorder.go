package models

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/store"
)

// Decisions is where routed calls are logged: hub/audit's Logger.
type Decisions interface {
	RecordAIDecisions(ctx context.Context, ds []store.AIDecision) error
}

// Recorder batching: a routed call's decision is written within
// recordEvery, in batches of at most recordBatch, off the request path.
const (
	recordEvery = 200 * time.Millisecond
	recordBatch = 500
	recordQueue = 8192
)

// Bounds on what a decision keeps of a prompt and an answer.
const (
	maxLoggedPrompt   = 8 << 10
	maxLoggedResponse = 8 << 10
)

// Decision metadata: what the AI-decision log's metadata holds for a
// routed call.
type DecisionMeta struct {
	Gateway      bool      `json:"gateway"`
	Hub          string    `json:"hub"`
	Requested    string    `json:"requested"`
	Route        string    `json:"route,omitempty"`
	Policy       string    `json:"policy"`
	Why          string    `json:"why"`
	Priority     string    `json:"priority,omitempty"`
	Skipped      []string  `json:"skipped,omitempty"`
	Fallbacks    []Attempt `json:"fallbacks,omitempty"`
	Budget       string    `json:"budget,omitempty"`
	InputTokens  int64     `json:"input_tokens"`
	OutputTokens int64     `json:"output_tokens"`
	CostUSD      float64   `json:"cost_usd"`
	Stream       bool      `json:"stream,omitempty"`
	Embedding    bool      `json:"embedding,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// pending is one routed call waiting to be written, with the spend it
// adds to budget ids.
type pending struct {
	d     store.AIDecision
	cost  float64
	spend []string
}

// recorder writes decisions and spend in batches.
type recorder struct {
	dec   Decisions
	spend *Spend
	log   *slog.Logger
	ch    chan pending
	done  chan struct{}
	once  sync.Once
}

func newRecorder(dec Decisions, spend *Spend, log *slog.Logger) *recorder {
	return &recorder{dec: dec, spend: spend, log: log, ch: make(chan pending, recordQueue), done: make(chan struct{})}
}

// add queues a call; it waits when the queue is full (back-pressure
// rather than a lost record) until ctx ends.
func (r *recorder) add(ctx context.Context, p pending) {
	select {
	case r.ch <- p:
	case <-ctx.Done():
		r.log.Warn("ai decision not recorded: the request ended while the queue was full", "model", p.d.Model)
	}
}

// run writes batches until ctx ends, then drains what is queued.
func (r *recorder) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(recordEvery)
	defer t.Stop()
	var batch []pending
	flush := func() {
		if len(batch) > 0 {
			r.write(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case p := <-r.ch:
			batch = append(batch, p)
			if len(batch) >= recordBatch {
				flush()
			}
		case <-t.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case p := <-r.ch:
					batch = append(batch, p)
				default:
					flush()
					return
				}
			}
		}
	}
}

func (r *recorder) write(batch []pending) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds := make([]store.AIDecision, len(batch))
	sums := map[string]float64{}
	for i, p := range batch {
		ds[i] = p.d
		for _, id := range p.spend {
			sums[id] += p.cost
		}
	}
	if r.spend != nil {
		for id, usd := range sums {
			if err := r.spend.Add(ctx, id, usd); err != nil {
				r.log.Warn("llm spend not counted", "budget", id, "error", err)
			}
		}
	}
	if r.dec == nil {
		return
	}
	if err := r.dec.RecordAIDecisions(ctx, ds); err != nil {
		r.log.Error("ai decisions not recorded", "count", len(ds), "error", err)
	}
}

func metaJSON(m DecisionMeta) json.RawMessage {
	b, _ := json.Marshal(m)
	return b
}

// promptText is the prompt as the decision log keeps it: the messages,
// bounded.
func promptText(msgs []Message) string {
	var n int
	for _, m := range msgs {
		n += len(m.Role) + len(m.Content) + 2
	}
	b := make([]byte, 0, min(n, maxLoggedPrompt))
	for _, m := range msgs {
		b = append(b, m.Role...)
		b = append(b, ": "...)
		b = append(b, m.Content...)
		b = append(b, '\n')
		if len(b) > maxLoggedPrompt {
			break
		}
	}
	return clipUTF8(string(b), maxLoggedPrompt)
}

// clipUTF8 makes s valid UTF-8 without NUL (what the decision log
// accepts) and cuts it to at most n bytes without splitting a character.
func clipUTF8(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
