package llmtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Ollama's REST API (https://github.com/ollama/ollama/blob/main/docs/api.md):
// POST /api/chat (JSON, or newline-delimited JSON objects when streaming,
// which is the default), POST /api/embed, GET /api/tags, GET /api/version;
// {"error":"…"} bodies.

func (s *Server) ollamaRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/chat", s.olChat)
	mux.HandleFunc("POST /api/embed", s.olEmbed)
	mux.HandleFunc("GET /api/tags", s.olTags)
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"version":"0.6.0"}` + "\n"))
	})
}

func olError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) olAuth(w http.ResponseWriter, r *http.Request) bool {
	if s.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.APIKey {
		olError(w, http.StatusUnauthorized, "unauthorized")
		return false
	}
	return true
}

func (s *Server) olFault(w http.ResponseWriter, b Behavior, f fault) bool {
	switch f {
	case faultRateLimit:
		if b.RetryAfter > 0 {
			w.Header().Set("Retry-After", "1")
		}
		olError(w, http.StatusTooManyRequests, "server busy, please try again.  maximum pending requests exceeded")
		return true
	case faultFail:
		olError(w, http.StatusInternalServerError, "llama runner process has terminated: exit status 2")
		return true
	}
	return false
}

func (s *Server) olChat(w http.ResponseWriter, r *http.Request) {
	if !s.olAuth(w, r) {
		return
	}
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		Stream  *bool `json:"stream"`
		Options struct {
			NumPredict int64 `json:"num_predict"`
		} `json:"options"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		olError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case req.Model == "":
		olError(w, http.StatusBadRequest, "model is required")
		return
	case !s.served(req.Model):
		olError(w, http.StatusNotFound, `model "`+req.Model+`" not found, try pulling it first`)
		return
	}
	b, f, ok := s.begin(r)
	if !ok || s.olFault(w, b, f) {
		return
	}
	var all, last string
	for _, m := range req.Messages {
		all += m.Content + " "
		if m.Role == "user" {
			last = m.Content
		}
	}
	answer := s.Answer(req.Model, last)
	reason := "stop"
	if n := req.Options.NumPredict; n > 0 && Tokens(answer) > n {
		answer, reason = strings.Join(strings.Fields(answer)[:n], " "), "length"
	}
	final := map[string]any{"model": req.Model, "created_at": time.Now().UTC().Format(time.RFC3339Nano),
		"message": map[string]any{"role": "assistant", "content": answer}, "done": true, "done_reason": reason,
		"total_duration": 1000000, "load_duration": 100000, "prompt_eval_count": Tokens(all), "prompt_eval_duration": 200000,
		"eval_count": Tokens(answer), "eval_duration": 700000}
	if req.Stream != nil && !*req.Stream {
		if b.HugeBody {
			writeHuge(w, r, `{"model":"`+req.Model+`","message":{"role":"assistant","content":"`)
			return
		}
		s.answered.Add(1)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(final)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	line := func(v any) bool {
		j, _ := json.Marshal(v)
		return flush(w, append(j, '\n'))
	}
	pieces := Pieces(answer)
	for i := 0; b.EndlessStream || i < len(pieces); i++ {
		if i > 0 && !sleep(r.Context(), b.TokenDelay) {
			return
		}
		if !line(map[string]any{"model": req.Model, "created_at": time.Now().UTC().Format(time.RFC3339Nano),
			"message": map[string]any{"role": "assistant", "content": pieces[i%len(pieces)]}, "done": false}) {
			return
		}
	}
	final["message"] = map[string]any{"role": "assistant", "content": ""}
	if line(final) {
		s.answered.Add(1)
	}
}

func (s *Server) olEmbed(w http.ResponseWriter, r *http.Request) {
	if !s.olAuth(w, r) {
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&req); err != nil {
		olError(w, http.StatusBadRequest, err.Error())
		return
	}
	var inputs []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []string{one}
	} else if json.Unmarshal(req.Input, &inputs) != nil {
		olError(w, http.StatusBadRequest, "invalid input type")
		return
	}
	if !s.served(req.Model) {
		olError(w, http.StatusNotFound, `model "`+req.Model+`" not found, try pulling it first`)
		return
	}
	b, f, ok := s.begin(r)
	if !ok || s.olFault(w, b, f) {
		return
	}
	embs := make([][]float32, len(inputs))
	var tokens int64
	for i, in := range inputs {
		embs[i], tokens = Embedding(in), tokens+Tokens(in)
	}
	s.answered.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"model": req.Model, "embeddings": embs,
		"total_duration": 1000000, "load_duration": 100000, "prompt_eval_count": tokens})
}

func (s *Server) olTags(w http.ResponseWriter, r *http.Request) {
	if !s.olAuth(w, r) {
		return
	}
	models := []any{}
	for _, m := range s.Models {
		models = append(models, map[string]any{"name": m, "model": m, "modified_at": "2025-01-01T00:00:00Z",
			"size": 2019393189, "digest": "sha256:llmtest", "details": map[string]any{"format": "gguf", "family": "llama",
				"parameter_size": "3.2B", "quantization_level": "Q4_K_M"}})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"models": models})
}
