package models

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ollamaProvider speaks Ollama's REST API (/api/chat, /api/embed):
// JSON answers, and newline-delimited JSON when streaming. There is no
// official Go client in the module proxy, so it is written here from the
// API reference.
type ollamaProvider struct {
	id, base, key string
	hc            *http.Client
}

func newOllama(id, baseURL, apiKey string, hc *http.Client) *ollamaProvider {
	if baseURL == "" {
		baseURL = "http://127.0.0.1:11434"
	}
	return &ollamaProvider{id: id, base: strings.TrimRight(baseURL, "/"), key: apiKey, hc: hc}
}

type ollamaOptions struct {
	NumPredict  int64    `json:"num_predict,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	Stop        []string `json:"stop,omitempty"`
}

type ollamaChatRequest struct {
	Model    string        `json:"model"`
	Messages []Message     `json:"messages"`
	Stream   bool          `json:"stream"`
	Options  ollamaOptions `json:"options"`
}

// ollamaChatResponse is one answer, or one line of a streamed answer.
type ollamaChatResponse struct {
	Model           string  `json:"model"`
	Message         Message `json:"message"`
	Done            bool    `json:"done"`
	DoneReason      string  `json:"done_reason"`
	PromptEvalCount int64   `json:"prompt_eval_count"`
	EvalCount       int64   `json:"eval_count"`
	Error           string  `json:"error"`
}

func (p *ollamaProvider) post(ctx context.Context, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, &ProviderError{Provider: p.id, Message: "bad base URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, transportError(p.id, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, p.errorAnswer(resp)
	}
	return resp, nil
}

// errorAnswer reads an error body: {"error":"…"}.
func (p *ollamaProvider) errorAnswer(resp *http.Response) error {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return &ProviderError{Provider: p.id, Status: resp.StatusCode, Message: clip(e.Error, maxErrorMessage), RetryAfter: retryAfter(resp.Header)}
}

func (p *ollamaProvider) chatBody(req ChatRequest, stream bool) ollamaChatRequest {
	return ollamaChatRequest{Model: req.Model, Messages: req.Messages, Stream: stream, Options: ollamaOptions{
		NumPredict: req.maxTokens(), Temperature: req.Temperature, TopP: req.TopP, Stop: req.Stop}}
}

func (p *ollamaProvider) Chat(ctx context.Context, req ChatRequest) (ChatResponse, error) {
	resp, err := p.post(ctx, "/api/chat", p.chatBody(req, false))
	if err != nil {
		return ChatResponse{}, err
	}
	defer resp.Body.Close()
	var r ollamaChatResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return ChatResponse{}, transportError(p.id, fmt.Errorf("decode answer: %w", err))
	}
	if len(r.Message.Content) > MaxAnswerBytes {
		return ChatResponse{}, ErrTooLarge
	}
	return ChatResponse{Content: r.Message.Content, FinishReason: ollamaFinish(r.DoneReason),
		Usage: Usage{InputTokens: r.PromptEvalCount, OutputTokens: r.EvalCount}}, nil
}

func ollamaFinish(reason string) string {
	if reason == "length" {
		return "length"
	}
	return "stop"
}

func (p *ollamaProvider) Stream(ctx context.Context, req ChatRequest) (Stream, error) {
	resp, err := p.post(ctx, "/api/chat", p.chatBody(req, true))
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), MaxAnswerBytes)
	return &ollamaStream{p: p, body: resp.Body, sc: sc}, nil
}

type ollamaStream struct {
	p    *ollamaProvider
	body io.ReadCloser
	sc   *bufio.Scanner
	done bool
}

func (st *ollamaStream) Recv() (Chunk, error) {
	for !st.done && st.sc.Scan() {
		line := bytes.TrimSpace(st.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r ollamaChatResponse
		if err := json.Unmarshal(line, &r); err != nil {
			if rerr := st.sc.Err(); rerr != nil {
				return Chunk{}, transportError(st.p.id, rerr) // a line cut by a read error (ErrTooLarge)
			}
			return Chunk{}, transportError(st.p.id, fmt.Errorf("decode stream line: %w", err))
		}
		if r.Error != "" {
			return Chunk{}, &ProviderError{Provider: st.p.id, Message: clip(r.Error, maxErrorMessage)}
		}
		if r.Done {
			st.done = true
			return Chunk{Content: r.Message.Content, FinishReason: ollamaFinish(r.DoneReason),
				Usage: &Usage{InputTokens: r.PromptEvalCount, OutputTokens: r.EvalCount}}, nil
		}
		if r.Message.Content != "" {
			return Chunk{Content: r.Message.Content}, nil
		}
	}
	if err := st.sc.Err(); err != nil {
		return Chunk{}, transportError(st.p.id, err)
	}
	if !st.done {
		return Chunk{}, &ProviderError{Provider: st.p.id, Message: "stream ended without done"}
	}
	return Chunk{}, io.EOF
}

func (st *ollamaStream) Close() error { return st.body.Close() }

func (p *ollamaProvider) Embed(ctx context.Context, req EmbedRequest) (EmbedResponse, error) {
	resp, err := p.post(ctx, "/api/embed", map[string]any{"model": req.Model, "input": req.Input})
	if err != nil {
		return EmbedResponse{}, err
	}
	defer resp.Body.Close()
	var r struct {
		Embeddings      [][]float32 `json:"embeddings"`
		PromptEvalCount int64       `json:"prompt_eval_count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return EmbedResponse{}, transportError(p.id, fmt.Errorf("decode embeddings: %w", err))
	}
	if len(r.Embeddings) != len(req.Input) {
		return EmbedResponse{}, &ProviderError{Provider: p.id, Message: fmt.Sprintf("%d embeddings for %d inputs", len(r.Embeddings), len(req.Input))}
	}
	return EmbedResponse{Vectors: r.Embeddings, Usage: Usage{InputTokens: r.PromptEvalCount}}, nil
}

func (p *ollamaProvider) CountTokens(_ context.Context, req ChatRequest) (int64, error) {
	return EstimatePrompt(req.Messages), nil
}
