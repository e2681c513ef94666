package models

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/anthropics/anthropic-sdk-go/v2/packages/ssestream"
)

// anthropicProvider speaks Anthropic's Messages API through the official
// SDK.
type anthropicProvider struct {
	id     string
	client anthropic.Client
}

func newAnthropic(id, baseURL, apiKey string, hc *http.Client) *anthropicProvider {
	opts := []option.RequestOption{
		// Credentials and the base URL come from the catalog, never from
		// the hub's environment or an SDK profile file.
		option.WithoutEnvironmentDefaults(),
		option.WithHTTPClient(hc),
		option.WithAPIKey(apiKey),
		option.WithMaxRetries(0),
	}
	if baseURL != "" {
		opts = append(opts, option.WithBaseURL(strings.TrimRight(baseURL, "/")+"/"))
	}
	return &anthropicProvider{id: id, client: anthropic.NewClient(opts...)}
}

// split separates the system prompt (a top-level field in this API) from
// the turns.
func (p *anthropicProvider) split(msgs []Message) ([]anthropic.TextBlockParam, []anthropic.MessageParam) {
	var system []anthropic.TextBlockParam
	turns := make([]anthropic.MessageParam, 0, len(msgs))
	for _, m := range msgs {
		switch m.Role {
		case "system":
			system = append(system, anthropic.TextBlockParam{Text: m.Content})
		case "assistant":
			turns = append(turns, anthropic.NewAssistantMessage(anthropic.NewTextBlock(m.Content)))
		default:
			turns = append(turns, anthropic.NewUserMessage(anthropic.NewTextBlock(m.Content)))
		}
	}
	return system, turns
}

func (p *anthropicProvider) params(req ChatRequest) anthropic.MessageNewParams {
	system, turns := p.split(req.Messages)
	return anthropic.MessageNewParams{Model: anthropic.Model(req.Model), MaxTokens: req.maxTokens(),
		Messages: turns, System: system, StopSequences: req.Stop}
}

func (p *anthropicProvider) Chat(ctx context.Context, req ChatRequest) (ChatResponse, error) {
	res, err := p.client.Messages.New(ctx, p.params(req))
	if err != nil {
		return ChatResponse{}, p.err(err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	if b.Len() > MaxAnswerBytes {
		return ChatResponse{}, ErrTooLarge
	}
	return ChatResponse{Content: b.String(), FinishReason: finishReason(string(res.StopReason)),
		Usage: Usage{InputTokens: res.Usage.InputTokens, OutputTokens: res.Usage.OutputTokens}}, nil
}

// finishReason maps Anthropic's stop reasons onto OpenAI's.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens":
		return "length"
	case "":
		return ""
	}
	return "stop"
}

func (p *anthropicProvider) Stream(ctx context.Context, req ChatRequest) (Stream, error) {
	s := p.client.Messages.NewStreaming(ctx, p.params(req))
	if err := s.Err(); err != nil {
		_ = s.Close()
		return nil, p.err(err)
	}
	return &anthropicStream{p: p, s: s}, nil
}

type anthropicStream struct {
	p     *anthropicProvider
	s     *ssestream.Stream[anthropic.MessageStreamEventUnion]
	usage Usage
}

func (st *anthropicStream) Recv() (Chunk, error) {
	for st.s.Next() {
		ev := st.s.Current()
		switch ev.Type {
		case "message_start":
			st.usage.InputTokens = ev.Message.Usage.InputTokens
		case "content_block_delta":
			if ev.Delta.Type == "text_delta" && ev.Delta.Text != "" {
				return Chunk{Content: ev.Delta.Text}, nil
			}
		case "message_delta":
			st.usage.OutputTokens = ev.Usage.OutputTokens
			if ev.Usage.InputTokens > 0 {
				st.usage.InputTokens = ev.Usage.InputTokens
			}
			u := st.usage
			return Chunk{FinishReason: finishReason(string(ev.Delta.StopReason)), Usage: &u}, nil
		}
	}
	if err := st.s.Err(); err != nil {
		return Chunk{}, st.p.err(err)
	}
	return Chunk{}, io.EOF
}

func (st *anthropicStream) Close() error { return st.s.Close() }

func (p *anthropicProvider) Embed(context.Context, EmbedRequest) (EmbedResponse, error) {
	return EmbedResponse{}, ErrUnsupported
}

func (p *anthropicProvider) CountTokens(ctx context.Context, req ChatRequest) (int64, error) {
	system, turns := p.split(req.Messages)
	params := anthropic.MessageCountTokensParams{Model: anthropic.Model(req.Model), Messages: turns}
	if len(system) > 0 {
		params.System.OfTextBlockArray = system
	}
	res, err := p.client.Messages.CountTokens(ctx, params)
	if err != nil {
		return 0, p.err(err)
	}
	return res.InputTokens, nil
}

// err turns an SDK error into a ProviderError.
func (p *anthropicProvider) err(err error) error {
	var ae *anthropic.Error
	if errors.As(err, &ae) {
		pe := &ProviderError{Provider: p.id, Status: ae.StatusCode, Code: string(ae.Type()), Message: clip(ae.Message, maxErrorMessage)}
		if ae.Response != nil {
			pe.RetryAfter = retryAfter(ae.Response.Header)
		}
		return pe
	}
	return transportError(p.id, err)
}
