package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Provider kinds.
const (
	KindOllama    = "ollama"
	KindOpenAI    = "openai" // OpenAI and OpenAI-compatible servers (vLLM, llama.cpp, LiteLLM)
	KindAnthropic = "anthropic"
)

// ProviderKinds lists the provider kinds the gateway speaks.
var ProviderKinds = []string{KindOllama, KindOpenAI, KindAnthropic}

// Model kinds.
const (
	ModelChat      = "chat"
	ModelEmbedding = "embedding"
)

// Bounds on what the gateway reads from a provider, so that a broken or
// malicious provider (a huge body, an endless stream) costs a bounded
// amount of memory and time.
const (
	// MaxResponseBytes bounds one provider response body, a whole stream
	// included.
	MaxResponseBytes = 8 << 20
	// MaxAnswerBytes bounds the text of one answer.
	MaxAnswerBytes = 1 << 20
)

// Message is one chat message (text only).
type Message struct {
	Role    string `json:"role"` // system, user, assistant
	Content string `json:"content"`
}

// ChatRequest is a chat completion request in the gateway's own terms.
type ChatRequest struct {
	Model       string // the provider's model name (catalog.Model.Upstream)
	Messages    []Message
	MaxTokens   int64 // 0: DefaultMaxTokens
	Temperature *float64
	TopP        *float64
	Stop        []string
}

// DefaultMaxTokens is the answer bound of a request that sets none
// (Anthropic's API requires one).
const DefaultMaxTokens = 1024

func (r ChatRequest) maxTokens() int64 {
	if r.MaxTokens > 0 {
		return r.MaxTokens
	}
	return DefaultMaxTokens
}

// Usage counts the tokens of one call as the provider reported them.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// ChatResponse is a finished chat completion.
type ChatResponse struct {
	Content      string
	FinishReason string // stop, length
	Usage        Usage
}

// Chunk is one piece of a streamed answer. The last chunk of a stream
// may carry only Usage.
type Chunk struct {
	Content      string
	FinishReason string
	Usage        *Usage
}

// Stream is a streamed answer: Recv returns chunks until io.EOF.
type Stream interface {
	Recv() (Chunk, error)
	Close() error
}

// EmbedRequest asks for one vector per input.
type EmbedRequest struct {
	Model string
	Input []string
}

// EmbedResponse holds one vector per input, in order.
type EmbedResponse struct {
	Vectors [][]float32
	Usage   Usage
}

// Provider is one upstream LLM API. Implementations are safe for
// concurrent use and never retry on their own: the gateway's fallback
// chain decides what happens after a failure. Errors from the upstream
// are *ProviderError.
type Provider interface {
	// Chat returns a whole answer.
	Chat(ctx context.Context, req ChatRequest) (ChatResponse, error)
	// Stream returns the answer piece by piece.
	Stream(ctx context.Context, req ChatRequest) (Stream, error)
	// Embed returns embedding vectors; ErrUnsupported where the API has
	// none (Anthropic).
	Embed(ctx context.Context, req EmbedRequest) (EmbedResponse, error)
	// CountTokens counts the prompt's tokens: exactly where the API can
	// (Anthropic's count_tokens), else EstimateTokens.
	CountTokens(ctx context.Context, req ChatRequest) (int64, error)
}

// ErrUnsupported is returned for an operation a provider's API lacks.
var ErrUnsupported = errors.New("not supported by this provider")

// ErrTooLarge is returned when a provider's answer passes MaxResponseBytes
// or MaxAnswerBytes.
var ErrTooLarge = errors.New("provider answer too large")

// ProviderError is an error answer (or no answer) from a provider.
type ProviderError struct {
	Provider   string
	Status     int    // HTTP status; 0 when no answer came
	Code       string // the provider's error type or code, when it sent one
	Message    string // the provider's message, bounded; never credentials
	RetryAfter time.Duration
	cause      error
}

func (e *ProviderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "provider %s", e.Provider)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// RateLimited reports a 429.
func (e *ProviderError) RateLimited() bool { return e.Status == http.StatusTooManyRequests }

// maxErrorMessage bounds a provider error message kept in errors and logs.
const maxErrorMessage = 300

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// retryAfter parses a Retry-After header (seconds).
func retryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// transportError wraps an error met before any answer (connection refused,
// timeout) as a ProviderError, keeping context errors recognisable.
func transportError(provider string, err error) error {
	var pe *ProviderError
	if errors.As(err, &pe) || errors.Is(err, ErrTooLarge) {
		return err
	}
	msg := err.Error()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		msg = "timed out"
	}
	return &ProviderError{Provider: provider, Message: clip(msg, maxErrorMessage), cause: err}
}

// Unwrap lets errors.Is see a context error behind a transport failure.
func (e *ProviderError) Unwrap() error { return e.cause }

// Price returns the cost in US dollars of usage on model m.
func Price(m catalog.Model, u Usage) float64 {
	return (float64(u.InputTokens)*m.InputPrice + float64(u.OutputTokens)*m.OutputPrice) / 1e6
}

// EstimateTokens estimates the tokens of a text the way the common BPE
// tokenizers average on English: about four bytes a token, at least one
// per word. It is what routing uses before a call (cost estimates,
// context length checks).
func EstimateTokens(s string) int64 {
	words := int64(len(strings.Fields(s)))
	byBytes := int64(len(s)+3) / 4
	return max(words, byBytes)
}

// EstimatePrompt estimates the tokens of a chat prompt, with the few
// tokens of framing each message costs.
func EstimatePrompt(msgs []Message) int64 {
	var n int64
	for _, m := range msgs {
		n += 4 + EstimateTokens(m.Content)
	}
	return n + 2
}

// limitedBody caps a response body: past limit bytes Read fails with
// ErrTooLarge.
type limitedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, b.limit)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// boundedTransport caps every response body at MaxResponseBytes.
type boundedTransport struct{ next http.RoundTripper }

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: MaxResponseBytes, limit: MaxResponseBytes}
	return resp, nil
}

// NewHTTPClient returns the HTTP client providers share: pooled
// connections, bounded bodies, no overall timeout (each call's context
// carries its deadline).
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 256
	tr.ResponseHeaderTimeout = 0
	return &http.Client{Transport: boundedTransport{next: tr}}
}

// NewProvider returns the provider for a catalog row, with its API key
// already opened.
func NewProvider(p catalog.LLMProvider, apiKey string, hc *http.Client) (Provider, error) {
	if hc == nil {
		hc = NewHTTPClient()
	}
	var pr Provider
	switch p.Kind {
	case KindOllama:
		pr = newOllama(p.ID, p.BaseURL, apiKey, hc)
	case KindOpenAI:
		pr = newOpenAI(p.ID, p.BaseURL, apiKey, hc)
	case KindAnthropic:
		pr = newAnthropic(p.ID, p.BaseURL, apiKey, hc)
	default:
		return nil, fmt.Errorf("provider %s: unknown kind %q (want one of %s)", p.ID, p.Kind, strings.Join(ProviderKinds, ", "))
	}
	if len(apiKey) < 4 {
		return pr, nil
	}
	return scrubbed{pr, apiKey}, nil
}

// scrubbed removes the API key from every error a provider returns: an
// upstream may echo the key it was given (OpenAI's "Incorrect API key
// provided: …"), and errors reach logs, the decision log and clients.
type scrubbed struct {
	Provider
	key string
}

func (s scrubbed) scrub(err error) error {
	if err == nil {
		return nil
	}
	var pe *ProviderError
	if errors.As(err, &pe) {
		c := *pe
		c.Message = strings.ReplaceAll(c.Message, s.key, "[REDACTED]")
		return &c
	}
	if strings.Contains(err.Error(), s.key) {
		return errors.New(strings.ReplaceAll(err.Error(), s.key, "[REDACTED]"))
	}
	return err
}

func (s scrubbed) Chat(ctx context.Context, req ChatRequest) (ChatResponse, error) {
	r, err := s.Provider.Chat(ctx, req)
	return r, s.scrub(err)
}

func (s scrubbed) Stream(ctx context.Context, req ChatRequest) (Stream, error) {
	st, err := s.Provider.Stream(ctx, req)
	if err != nil {
		return nil, s.scrub(err)
	}
	return scrubbedStream{st, s}, nil
}

func (s scrubbed) Embed(ctx context.Context, req EmbedRequest) (EmbedResponse, error) {
	r, err := s.Provider.Embed(ctx, req)
	return r, s.scrub(err)
}

func (s scrubbed) CountTokens(ctx context.Context, req ChatRequest) (int64, error) {
	n, err := s.Provider.CountTokens(ctx, req)
	return n, s.scrub(err)
}

type scrubbedStream struct {
	Stream
	s scrubbed
}

func (st scrubbedStream) Recv() (Chunk, error) {
	c, err := st.Stream.Recv()
	if err == io.EOF {
		return c, err
	}
	return c, st.s.scrub(err)
}
