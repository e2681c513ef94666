package llmtest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Anthropic's Messages API (https://docs.anthropic.com/en/api/messages):
// POST /v1/messages (JSON, or SSE events message_start,
// content_block_start, ping, content_block_delta, content_block_stop,
// message_delta, message_stop), POST /v1/messages/count_tokens,
// GET /v1/models; x-api-key and anthropic-version headers;
// {"type":"error","error":{"type","message"}} bodies; 429 with
// retry-after and anthropic-ratelimit-* headers; 529 when overloaded.

func (s *Server) anthropicRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/messages", s.antMessages)
	mux.HandleFunc("POST /v1/messages/count_tokens", s.antCount)
	mux.HandleFunc("GET /v1/models", s.antModels)
}

func antError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg},
		"request_id": w.Header().Get("request-id")})
}

func (s *Server) antAuth(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("request-id", s.requestID("req_"))
	reset := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	w.Header().Set("anthropic-ratelimit-requests-limit", "4000")
	w.Header().Set("anthropic-ratelimit-requests-remaining", "3999")
	w.Header().Set("anthropic-ratelimit-requests-reset", reset)
	w.Header().Set("anthropic-ratelimit-tokens-limit", "400000")
	w.Header().Set("anthropic-ratelimit-tokens-remaining", "399000")
	w.Header().Set("anthropic-ratelimit-tokens-reset", reset)
	switch {
	// The API takes the key as x-api-key; SDK v2 sends it as a bearer
	// token, which the API also accepts.
	case s.APIKey != "" && r.Header.Get("x-api-key") != s.APIKey && r.Header.Get("Authorization") != "Bearer "+s.APIKey:
		antError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return false
	case r.Header.Get("anthropic-version") == "":
		antError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return false
	}
	return true
}

func (s *Server) antFault(w http.ResponseWriter, b Behavior, f fault) bool {
	switch f {
	case faultRateLimit:
		ra := b.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		w.Header().Set("retry-after", strconv.Itoa(int(math.Ceil(ra.Seconds()))))
		w.Header().Set("anthropic-ratelimit-requests-remaining", "0")
		antError(w, http.StatusTooManyRequests, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
		return true
	case faultFail:
		antError(w, http.StatusInternalServerError, "api_error", "Internal server error")
		return true
	}
	return false
}

// antText is a content or system field: a string or an array of blocks.
type antText string

func (t *antText) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*t = antText(str)
		return nil
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &blocks); err != nil {
		return fmt.Errorf("must be a string or an array of content blocks")
	}
	var sb strings.Builder
	for _, bl := range blocks {
		if bl.Type == "text" {
			sb.WriteString(bl.Text)
		}
	}
	*t = antText(sb.String())
	return nil
}

type antRequest struct {
	Model     string  `json:"model"`
	MaxTokens *int64  `json:"max_tokens"`
	System    antText `json:"system"`
	Messages  []struct {
		Role    string  `json:"role"`
		Content antText `json:"content"`
	} `json:"messages"`
	Stream        bool     `json:"stream"`
	StopSequences []string `json:"stop_sequences"`
}

func (s *Server) antDecode(w http.ResponseWriter, r *http.Request, needMax bool) (antRequest, bool) {
	var req antRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20)).Decode(&req); err != nil {
		antError(w, http.StatusBadRequest, "invalid_request_error", "The request body is not valid JSON: "+err.Error())
		return req, false
	}
	switch {
	case req.Model == "":
		antError(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
	case needMax && req.MaxTokens == nil:
		antError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
	case len(req.Messages) == 0:
		antError(w, http.StatusBadRequest, "invalid_request_error", "messages: at least one message is required")
	case !s.served(req.Model):
		antError(w, http.StatusNotFound, "not_found_error", "model: "+req.Model)
	default:
		return req, true
	}
	return req, false
}

func (req antRequest) prompt() (all, last string) {
	all = string(req.System) + " "
	for _, m := range req.Messages {
		all += string(m.Content) + " "
		if m.Role == "user" {
			last = string(m.Content)
		}
	}
	return all, last
}

func (s *Server) antMessages(w http.ResponseWriter, r *http.Request) {
	if !s.antAuth(w, r) {
		return
	}
	req, ok := s.antDecode(w, r, true)
	if !ok {
		return
	}
	b, f, ok := s.begin(r)
	if !ok || s.antFault(w, b, f) {
		return
	}
	all, last := req.prompt()
	answer := s.Answer(req.Model, last)
	stop := "end_turn"
	if *req.MaxTokens > 0 && Tokens(answer) > *req.MaxTokens {
		answer, stop = strings.Join(strings.Fields(answer)[:*req.MaxTokens], " "), "max_tokens"
	}
	in, out := Tokens(all), Tokens(answer)
	id := s.requestID("msg_")
	if req.Stream {
		s.antStream(w, r, b, req, id, answer, stop, in, out)
		return
	}
	if b.HugeBody {
		writeHuge(w, r, `{"id":"`+id+`","type":"message","role":"assistant","model":"`+req.Model+`","content":[{"type":"text","text":"`)
		return
	}
	s.answered.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": req.Model,
		"content":     []any{map[string]any{"type": "text", "text": answer}},
		"stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": in, "output_tokens": out, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"},
	})
}

func (s *Server) antStream(w http.ResponseWriter, r *http.Request, b Behavior, req antRequest, id, answer, stop string, in, out int64) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	event := func(name string, data map[string]any) bool {
		data["type"] = name
		j, _ := json.Marshal(data)
		return flush(w, []byte("event: "+name+"\ndata: "+string(j)+"\n\n"))
	}
	if !event("message_start", map[string]any{"message": map[string]any{"id": id, "type": "message", "role": "assistant",
		"model": req.Model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": in, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}) {
		return
	}
	if !event("content_block_start", map[string]any{"index": 0, "content_block": map[string]any{"type": "text", "text": ""}}) ||
		!event("ping", map[string]any{}) {
		return
	}
	pieces := Pieces(answer)
	for i := 0; b.EndlessStream || i < len(pieces); i++ {
		if i > 0 && !sleep(r.Context(), b.TokenDelay) {
			return
		}
		if !event("content_block_delta", map[string]any{"index": 0, "delta": map[string]any{"type": "text_delta", "text": pieces[i%len(pieces)]}}) {
			return
		}
	}
	if !event("content_block_stop", map[string]any{"index": 0}) ||
		!event("message_delta", map[string]any{"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": out}}) {
		return
	}
	if event("message_stop", map[string]any{}) {
		s.answered.Add(1)
	}
}

func (s *Server) antCount(w http.ResponseWriter, r *http.Request) {
	if !s.antAuth(w, r) {
		return
	}
	req, ok := s.antDecode(w, r, false)
	if !ok {
		return
	}
	all, _ := req.prompt()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"input_tokens": Tokens(all)})
}

func (s *Server) antModels(w http.ResponseWriter, r *http.Request) {
	if !s.antAuth(w, r) {
		return
	}
	data := []any{}
	for _, m := range s.Models {
		data = append(data, map[string]any{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"})
	}
	first, last := "", ""
	if len(s.Models) > 0 {
		first, last = s.Models[0], s.Models[len(s.Models)-1]
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "has_more": false, "first_id": first, "last_id": last})
}
