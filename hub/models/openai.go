package models

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// openAIProvider speaks the OpenAI API (and any server compatible with
// it) through the official SDK.
type openAIProvider struct {
	id     string
	client openai.Client
}

func newOpenAI(id, baseURL, apiKey string, hc *http.Client) *openAIProvider {
	if apiKey == "" {
		apiKey = "none" // compatible servers without auth ignore it; the SDK wants one
	}
	opts := []option.RequestOption{
		option.WithHTTPClient(hc),
		option.WithAPIKey(apiKey),
		option.WithMaxRetries(0),
		// The hub's environment must not add an organization or project.
		option.WithHeaderDel("OpenAI-Organization"),
		option.WithHeaderDel("OpenAI-Project"),
	}
	if baseURL != "" {
		opts = append(opts, option.WithBaseURL(strings.TrimRight(baseURL, "/")+"/"))
	}
	return &openAIProvider{id: id, client: openai.NewClient(opts...)}
}

func (p *openAIProvider) params(req ChatRequest) openai.ChatCompletionNewParams {
	msgs := make([]openai.ChatCompletionMessageParamUnion, 0, len(req.Messages))
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			msgs = append(msgs, openai.SystemMessage(m.Content))
		case "assistant":
			msgs = append(msgs, openai.AssistantMessage(m.Content))
		default:
			msgs = append(msgs, openai.UserMessage(m.Content))
		}
	}
	params := openai.ChatCompletionNewParams{Model: req.Model, Messages: msgs, MaxTokens: openai.Int(req.maxTokens())}
	if req.Temperature != nil {
		params.Temperature = openai.Float(*req.Temperature)
	}
	if req.TopP != nil {
		params.TopP = openai.Float(*req.TopP)
	}
	if len(req.Stop) > 0 {
		params.Stop.OfStringArray = req.Stop
	}
	return params
}

func (p *openAIProvider) Chat(ctx context.Context, req ChatRequest) (ChatResponse, error) {
	res, err := p.client.Chat.Completions.New(ctx, p.params(req))
	if err != nil {
		return ChatResponse{}, p.err(err)
	}
	out := ChatResponse{Usage: Usage{InputTokens: res.Usage.PromptTokens, OutputTokens: res.Usage.CompletionTokens}}
	if len(res.Choices) > 0 {
		out.Content, out.FinishReason = res.Choices[0].Message.Content, string(res.Choices[0].FinishReason)
	}
	if len(out.Content) > MaxAnswerBytes {
		return ChatResponse{}, ErrTooLarge
	}
	return out, nil
}

func (p *openAIProvider) Stream(ctx context.Context, req ChatRequest) (Stream, error) {
	params := p.params(req)
	params.StreamOptions.IncludeUsage = openai.Bool(true)
	s := p.client.Chat.Completions.NewStreaming(ctx, params)
	if err := s.Err(); err != nil {
		_ = s.Close()
		return nil, p.err(err)
	}
	return &openAIStream{p: p, s: s}, nil
}

type openAIStream struct {
	p *openAIProvider
	s *ssestream.Stream[openai.ChatCompletionChunk]
}

func (st *openAIStream) Recv() (Chunk, error) {
	for st.s.Next() {
		c := st.s.Current()
		var out Chunk
		if len(c.Choices) > 0 {
			out.Content, out.FinishReason = c.Choices[0].Delta.Content, string(c.Choices[0].FinishReason)
		}
		if c.Usage.PromptTokens > 0 || c.Usage.CompletionTokens > 0 {
			out.Usage = &Usage{InputTokens: c.Usage.PromptTokens, OutputTokens: c.Usage.CompletionTokens}
		}
		if out.Content == "" && out.FinishReason == "" && out.Usage == nil {
			continue // the role-only first chunk, keep-alives
		}
		return out, nil
	}
	if err := st.s.Err(); err != nil {
		return Chunk{}, st.p.err(err)
	}
	return Chunk{}, io.EOF
}

func (st *openAIStream) Close() error { return st.s.Close() }

func (p *openAIProvider) Embed(ctx context.Context, req EmbedRequest) (EmbedResponse, error) {
	res, err := p.client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model:          req.Model,
		Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: req.Input},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
	})
	if err != nil {
		return EmbedResponse{}, p.err(err)
	}
	out := EmbedResponse{Vectors: make([][]float32, len(req.Input)),
		Usage: Usage{InputTokens: res.Usage.PromptTokens}}
	for _, d := range res.Data {
		if d.Index < 0 || int(d.Index) >= len(out.Vectors) {
			return EmbedResponse{}, &ProviderError{Provider: p.id, Message: "embedding index out of range"}
		}
		v := make([]float32, len(d.Embedding))
		for i, f := range d.Embedding {
			v[i] = float32(f)
		}
		out.Vectors[d.Index] = v
	}
	for i, v := range out.Vectors {
		if v == nil {
			return EmbedResponse{}, &ProviderError{Provider: p.id, Message: "no embedding for input " + strconv.Itoa(i)}
		}
	}
	return out, nil
}

func (p *openAIProvider) CountTokens(_ context.Context, req ChatRequest) (int64, error) {
	return EstimatePrompt(req.Messages), nil
}

// err turns an SDK error into a ProviderError.
func (p *openAIProvider) err(err error) error {
	var ae *openai.Error
	if errors.As(err, &ae) {
		pe := &ProviderError{Provider: p.id, Status: ae.StatusCode, Code: ae.Type, Message: clip(ae.Message, maxErrorMessage)}
		if ae.Code != "" {
			pe.Code = ae.Code
		}
		if ae.Response != nil {
			pe.RetryAfter = retryAfter(ae.Response.Header)
		}
		return pe
	}
	return transportError(p.id, err)
}
