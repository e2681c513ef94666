package llmtest

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The OpenAI wire format (https://platform.openai.com/docs/api-reference):
// POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models, bearer
// auth, {"error":{"message","type","param","code"}} error bodies,
// x-ratelimit-* headers on every answer and Retry-After on a 429.

func (s *Server) openAIRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/chat/completions", s.oaiChat)
	mux.HandleFunc("POST /v1/embeddings", s.oaiEmbeddings)
	mux.HandleFunc("GET /v1/models", s.oaiModels)
}

// oaiContent is a message content: a string or an array of parts.
type oaiContent string

func (c *oaiContent) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*c = oaiContent(str)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("content must be a string or an array of content parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			sb.WriteString(p.Text)
		}
	}
	*c = oaiContent(sb.String())
	return nil
}

type oaiChatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string     `json:"role"`
		Content oaiContent `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
}

func oaiError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	body := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		body["code"] = code
	}
	if param != "" {
		body["param"] = param
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}

// oaiAuth checks the bearer key and sets the headers every answer has.
func (s *Server) oaiAuth(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("x-request-id", s.requestID("req_"))
	w.Header().Set("openai-processing-ms", "1")
	w.Header().Set("x-ratelimit-limit-requests", "10000")
	w.Header().Set("x-ratelimit-remaining-requests", "9999")
	w.Header().Set("x-ratelimit-reset-requests", "6ms")
	w.Header().Set("x-ratelimit-limit-tokens", "2000000")
	w.Header().Set("x-ratelimit-remaining-tokens", "1999000")
	w.Header().Set("x-ratelimit-reset-tokens", "30ms")
	if s.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.APIKey {
		// Like the real API, the message names the key it was given.
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		oaiError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "", "Incorrect API key provided: "+got+". You can find your API key at https://platform.openai.com/account/api-keys.")
		return false
	}
	return true
}

// oaiFault answers a fault, if the request's turn has one.
func (s *Server) oaiFault(w http.ResponseWriter, b Behavior, f fault) bool {
	switch f {
	case faultRateLimit:
		ra := b.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		w.Header().Set("retry-after", strconv.Itoa(int(math.Ceil(ra.Seconds()))))
		w.Header().Set("x-ratelimit-remaining-requests", "0")
		oaiError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "", "Rate limit reached for requests per min (RPM): Limit 10000, Used 10000, Requested 1. Please try again in 1s.")
		return true
	case faultFail:
		oaiError(w, http.StatusInternalServerError, "server_error", "", "", "The server had an error while processing your request. Sorry about that!")
		return true
	}
	return false
}

func (s *Server) oaiChat(w http.ResponseWriter, r *http.Request) {
	if !s.oaiAuth(w, r) {
		return
	}
	var req oaiChatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "", "We could not parse the JSON body of your request. ("+err.Error()+")")
		return
	}
	switch {
	case req.Model == "":
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "model", "you must provide a model parameter")
		return
	case len(req.Messages) == 0:
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "empty_array", "messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.")
		return
	case !s.served(req.Model):
		oaiError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "", "The model `"+req.Model+"` does not exist or you do not have access to it.")
		return
	}
	b, f, ok := s.begin(r)
	if !ok || s.oaiFault(w, b, f) {
		return
	}
	var prompt, last string
	for _, m := range req.Messages {
		prompt += string(m.Content) + " "
		if m.Role == "user" {
			last = string(m.Content)
		}
	}
	answer := s.Answer(req.Model, last)
	limit := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		limit = req.MaxCompletionTokens
	}
	finish := "stop"
	if limit != nil && *limit > 0 && Tokens(answer) > *limit {
		answer = strings.Join(strings.Fields(answer)[:*limit], " ")
		finish = "length"
	}
	usage := map[string]any{"prompt_tokens": Tokens(prompt), "completion_tokens": Tokens(answer),
		"total_tokens":              Tokens(prompt) + Tokens(answer),
		"prompt_tokens_details":     map[string]any{"cached_tokens": 0, "audio_tokens": 0},
		"completion_tokens_details": map[string]any{"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
	id, created := s.requestID("chatcmpl-"), time.Now().Unix()
	if req.Stream {
		s.oaiStream(w, r, b, req, id, created, answer, finish, usage)
		return
	}
	if b.HugeBody {
		writeHuge(w, r, `{"id":"`+id+`","object":"chat.completion","created":1,"model":"`+req.Model+`","choices":[{"index":0,"message":{"role":"assistant","content":"`)
		return
	}
	s.answered.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": id, "object": "chat.completion", "created": created, "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": answer, "refusal": nil, "annotations": []any{}},
			"logprobs": nil, "finish_reason": finish}},
		"usage": usage, "service_tier": "default", "system_fingerprint": "fp_llmtest",
	})
}

func (s *Server) oaiStream(w http.ResponseWriter, r *http.Request, b Behavior, req oaiChatRequest, id string, created int64, answer, finish string, usage map[string]any) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	chunk := func(delta map[string]any, finish any, u any) bool {
		choices := []any{}
		if delta != nil {
			choices = append(choices, map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish})
		}
		c := map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"system_fingerprint": "fp_llmtest", "choices": choices, "usage": u}
		j, _ := json.Marshal(c)
		return flush(w, append(append([]byte("data: "), j...), '\n', '\n'))
	}
	if !chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil, nil) {
		return
	}
	pieces := Pieces(answer)
	for i := 0; b.EndlessStream || i < len(pieces); i++ {
		if i > 0 && !sleep(r.Context(), b.TokenDelay) {
			return
		}
		if !chunk(map[string]any{"content": pieces[i%len(pieces)]}, nil, nil) {
			return
		}
	}
	if !chunk(map[string]any{}, finish, nil) {
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		if !chunk(nil, nil, usage) {
			return
		}
	}
	if flush(w, []byte("data: [DONE]\n\n")) {
		s.answered.Add(1)
	}
}

func (s *Server) oaiEmbeddings(w http.ResponseWriter, r *http.Request) {
	if !s.oaiAuth(w, r) {
		return
	}
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "", "We could not parse the JSON body of your request.")
		return
	}
	var inputs []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []string{one}
	} else if json.Unmarshal(req.Input, &inputs) != nil || len(inputs) == 0 {
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "input", "'input' must be a string or a non-empty array of strings")
		return
	}
	if !s.served(req.Model) {
		oaiError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "", "The model `"+req.Model+"` does not exist or you do not have access to it.")
		return
	}
	b, f, ok := s.begin(r)
	if !ok || s.oaiFault(w, b, f) {
		return
	}
	data := make([]any, len(inputs))
	var tokens int64
	for i, in := range inputs {
		tokens += Tokens(in)
		vec := Embedding(in)
		var emb any = vec
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(vec))
			for j, x := range vec {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(x))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	s.answered.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model,
		"usage": map[string]any{"prompt_tokens": tokens, "total_tokens": tokens}})
}

func (s *Server) oaiModels(w http.ResponseWriter, r *http.Request) {
	if !s.oaiAuth(w, r) {
		return
	}
	data := []any{}
	for _, m := range s.Models {
		data = append(data, map[string]any{"id": m, "object": "model", "created": 1700000000, "owned_by": "llmtest"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
}
