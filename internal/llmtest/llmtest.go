// Package llmtest runs protocol-faithful stand-ins for the LLM APIs the
// hub's gateway calls — OpenAI's (and compatible servers'), Anthropic's
// Messages API and Ollama's REST API — written from their published wire
// formats: requests, answers, SSE and NDJSON streaming, usage fields,
// error bodies and rate-limit headers. The official SDKs talk to them
// unchanged (llmtest_test.go). Each server can be told to be slow, to
// fail, to rate-limit, to answer wrongly at a given rate, to hang, or to
// misbehave (a huge body, an endless stream), so that routing, fallbacks,
// SLA switching and benchmarks are tested for real. No model runs: the
// answers come from an answer key or are made up from the prompt.
//
// It is for tests and benchmarks only.
package llmtest

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Kind is the API a server speaks.
type Kind string

// Kinds.
const (
	OpenAI    Kind = "openai"
	Anthropic Kind = "anthropic"
	Ollama    Kind = "ollama"
)

// Behavior is how a server answers. The zero value answers at once and
// correctly.
type Behavior struct {
	// Latency is waited before answering (before the first token of a
	// stream); TokenDelay between streamed tokens.
	Latency    time.Duration
	TokenDelay time.Duration
	// FailRate and RateLimitRate are the fractions of requests answered
	// with a 500 and a 429. Rates are exact, not random: with 0.5 every
	// second request fails.
	FailRate      float64
	RateLimitRate float64
	// WrongRate is the fraction of the answer key's prompts answered
	// wrongly: exactly round(WrongRate × len(key)) of them, always the
	// same ones.
	WrongRate float64
	// Hang never answers (until the client gives up).
	Hang bool
	// HugeBody answers with a body that never ends; EndlessStream streams
	// tokens forever.
	HugeBody      bool
	EndlessStream bool
	// RetryAfter is the Retry-After of a 429 (default 1s).
	RetryAfter time.Duration
}

// Server is one running stand-in.
type Server struct {
	Kind   Kind
	URL    string // base URL as a client configures it (OpenAI's ends in /v1)
	APIKey string // the key it requires; empty: none (Ollama)
	// Models are the model names it serves; empty: any.
	Models []string

	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	b        Behavior
	answers  map[string]string
	wrong    map[string]bool
	requests atomic.Int64
	failN    atomic.Int64
	limitN   atomic.Int64
	answered atomic.Int64
	inflight sync.WaitGroup
}

// Option adjusts a server before it starts.
type Option func(*Server)

// WithKey sets the API key the server requires.
func WithKey(key string) Option { return func(s *Server) { s.APIKey = key } }

// WithModels sets the model names the server serves.
func WithModels(names ...string) Option { return func(s *Server) { s.Models = names } }

// WithBehavior sets the initial behaviour.
func WithBehavior(b Behavior) Option { return func(s *Server) { s.b = b } }

// New starts a server of kind on a free loopback port. Close stops it.
func New(kind Kind, opts ...Option) (*Server, error) {
	s := &Server{Kind: kind, answers: map[string]string{}, wrong: map[string]bool{}}
	if kind != Ollama {
		s.APIKey = "test-key-" + string(kind)
	}
	for _, o := range opts {
		o(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.URL = "http://" + ln.Addr().String()
	if kind == OpenAI {
		s.URL += "/v1"
	}
	mux := http.NewServeMux()
	switch kind {
	case OpenAI:
		s.openAIRoutes(mux)
	case Anthropic:
		s.anthropicRoutes(mux)
	case Ollama:
		s.ollamaRoutes(mux)
	default:
		_ = ln.Close()
		return nil, errors.New("llmtest: unknown kind " + string(kind))
	}
	s.srv = &http.Server{Handler: s.track(mux), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Start is New for a test: it fails the test on error and closes the
// server at cleanup.
func Start(tb testing.TB, kind Kind, opts ...Option) *Server {
	tb.Helper()
	s, err := New(kind, opts...)
	if err != nil {
		tb.Fatalf("llmtest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server and ends every open request (hung ones too).
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	s.inflight.Wait()
}

// track counts requests and lets Close end hung handlers.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		h.ServeHTTP(w, r)
	})
}

// Set replaces the behaviour; it applies to requests that start after it.
func (s *Server) Set(b Behavior) {
	s.mu.Lock()
	s.b = b
	s.pickWrong()
	s.mu.Unlock()
}

// Behavior returns the current behaviour.
func (s *Server) Behavior() Behavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b
}

// SetAnswers sets the answer key: the right answer to each prompt (the
// last user message).
func (s *Server) SetAnswers(key map[string]string) {
	s.mu.Lock()
	s.answers = make(map[string]string, len(key))
	for k, v := range key {
		s.answers[strings.TrimSpace(k)] = v
	}
	s.pickWrong()
	s.mu.Unlock()
}

// pickWrong chooses the prompts answered wrongly: the first
// round(WrongRate × n) of the key in hash order.
func (s *Server) pickWrong() {
	keys := make([]string, 0, len(s.answers))
	for k := range s.answers {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ha, hb := hash(a), hash(b)
		switch {
		case ha < hb:
			return -1
		case ha > hb:
			return 1
		}
		return strings.Compare(a, b)
	})
	n := int(math.Round(s.b.WrongRate * float64(len(keys))))
	s.wrong = make(map[string]bool, n)
	for _, k := range keys[:n] {
		s.wrong[k] = true
	}
}

func hash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// Requests returns how many API requests the server received;
// Answered how many it answered successfully.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Answered returns how many requests got a successful answer.
func (s *Server) Answered() int64 { return s.answered.Load() }

// fault is what a request's turn says to do instead of answering.
type fault int

const (
	faultNone fault = iota
	faultFail
	faultRateLimit
)

// every reports whether the n-th event (from 1) falls on a rate's beat.
func every(n int64, rate float64) bool {
	if rate <= 0 {
		return false
	}
	return math.Floor(float64(n)*rate) > math.Floor(float64(n-1)*rate)
}

// begin counts a request and returns its behaviour and fault. It waits
// out the latency (or forever when hanging) unless the client goes.
func (s *Server) begin(r *http.Request) (Behavior, fault, bool) {
	s.requests.Add(1)
	b := s.Behavior()
	if b.Hang {
		<-r.Context().Done()
		return b, faultNone, false
	}
	if !sleep(r.Context(), b.Latency) {
		return b, faultNone, false
	}
	if every(s.limitN.Add(1), b.RateLimitRate) {
		return b, faultRateLimit, true
	}
	if every(s.failN.Add(1), b.FailRate) {
		return b, faultFail, true
	}
	return b, faultNone, true
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// served reports whether the server serves model.
func (s *Server) served(model string) bool {
	return len(s.Models) == 0 || slices.Contains(s.Models, model)
}

// Answer is what the server answers to prompt (the last user message)
// under its current behaviour.
func (s *Server) Answer(model, prompt string) string {
	prompt = strings.TrimSpace(prompt)
	s.mu.Lock()
	right, known := s.answers[prompt]
	wrong := s.wrong[prompt]
	s.mu.Unlock()
	switch {
	case known && wrong:
		return "I am not sure, perhaps something else entirely."
	case known:
		return right
	}
	words := strings.Fields(prompt)
	if len(words) > 8 {
		words = words[:8]
	}
	return "Answer from " + model + ": " + strings.Join(words, " ")
}

// Tokens counts tokens the way these servers do: one per word, at least
// one.
func Tokens(s string) int64 { return max(int64(len(strings.Fields(s))), 1) }

// Pieces splits an answer into the tokens a stream sends: each word with
// its following space.
func Pieces(answer string) []string {
	var out []string
	for i, w := range strings.SplitAfter(answer, " ") {
		if w != "" || i == 0 {
			out = append(out, w)
		}
	}
	return out
}

// Embedding is the vector these servers give a text: a hashed bag of
// words in Dim dimensions, normalised, so texts sharing words are close
// (cosine) and texts sharing none are near orthogonal.
func Embedding(text string) []float32 {
	v := make([]float64, Dim)
	for _, w := range strings.Fields(strings.ToLower(text)) {
		w = strings.Trim(w, ".,;:!?\"'()")
		if w == "" {
			continue
		}
		h := hash(w)
		sign := 1.0
		if h&1 == 1 {
			sign = -1
		}
		v[(h>>1)%Dim] += sign
	}
	var n float64
	for _, x := range v {
		n += x * x
	}
	out := make([]float32, Dim)
	if n == 0 {
		return out
	}
	n = math.Sqrt(n)
	for i, x := range v {
		out[i] = float32(x / n)
	}
	return out
}

// Dim is the dimension of Embedding vectors.
const Dim = 64

// requestID makes a response id.
func (s *Server) requestID(prefix string) string {
	return prefix + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", ""))
}

// flusher writes and flushes one stream piece; false when the client went.
func flush(w http.ResponseWriter, b []byte) bool {
	if _, err := w.Write(b); err != nil {
		return false
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return true
}

// writeHuge writes prefix then an endless string until the client goes.
func writeHuge(w http.ResponseWriter, r *http.Request, prefix string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if !flush(w, []byte(prefix)) {
		return
	}
	block := []byte(strings.Repeat("A", 32<<10))
	for r.Context().Err() == nil {
		if !flush(w, block) {
			return
		}
	}
}
