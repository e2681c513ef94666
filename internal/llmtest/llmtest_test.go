package llmtest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	antoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func openAIClient(s *Server, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(s.URL+"/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func anthropicClient(s *Server, key string) anthropic.Client {
	return anthropic.NewClient(antoption.WithoutEnvironmentDefaults(), antoption.WithBaseURL(s.URL+"/"),
		antoption.WithAPIKey(key), antoption.WithMaxRetries(0))
}

// TestOpenAISDK: the official OpenAI SDK, unchanged, talks to the
// stand-in: a completion with usage, a stream token by token with its
// usage chunk, embeddings, the model list, and errors it decodes (401,
// 404, 429 with Retry-After, 500).
func TestOpenAISDK(t *testing.T) {
	s := Start(t, OpenAI, WithModels("gpt-4o-mini", "text-embedding-3-small"))
	s.SetAnswers(map[string]string{"What is the capital of France?": "Paris"})
	c := openAIClient(s, s.APIKey)
	ctx := context.Background()
	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("What is the capital of France?")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Choices[0].Message.Content != "Paris" || res.Choices[0].FinishReason != "stop" || res.Usage.CompletionTokens != 1 || res.Usage.PromptTokens != 8 || res.Usage.TotalTokens != 9 {
		t.Fatalf("completion = %+v usage %+v", res.Choices[0], res.Usage)
	}

	s.SetAnswers(map[string]string{"count": "one two three four"})
	st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("count")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	acc := openai.ChatCompletionAccumulator{}
	var pieces []string
	for st.Next() {
		ch := st.Current()
		acc.AddChunk(ch)
		if len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			pieces = append(pieces, ch.Choices[0].Delta.Content)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if len(pieces) != 4 || acc.Choices[0].Message.Content != "one two three four" || acc.Usage.CompletionTokens != 4 {
		t.Fatalf("stream pieces %q, accumulated %q, usage %+v", pieces, acc.Choices[0].Message.Content, acc.Usage)
	}

	emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"red apple", "green apple"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 2 || len(emb.Data[1].Embedding) != Dim || emb.Usage.PromptTokens != 4 {
		t.Fatalf("embeddings = %d vectors, usage %+v", len(emb.Data), emb.Usage)
	}
	// The SDK's default base64 encoding decodes to the same vector.
	emb64, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("red apple")}, EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb64.Data) != 1 {
		t.Fatalf("base64 embeddings = %+v", emb64.Data)
	}

	page, err := c.Models.List(ctx)
	if err != nil || len(page.Data) != 2 || page.Data[0].ID != "gpt-4o-mini" {
		t.Fatalf("models = %+v, %v", page, err)
	}

	var ae *openai.Error
	bad := openAIClient(s, "wrong")
	_, err = bad.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != "invalid_api_key" {
		t.Fatalf("wrong key: %v", err)
	}
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "nope", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != "model_not_found" {
		t.Fatalf("unknown model: %v", err)
	}
	s.Set(Behavior{RateLimitRate: 1, RetryAfter: 2 * time.Second})
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusTooManyRequests || ae.Code != "rate_limit_exceeded" || ae.Response.Header.Get("Retry-After") != "2" ||
		ae.Response.Header.Get("x-ratelimit-remaining-requests") != "0" {
		t.Fatalf("rate limited: %v", err)
	}
	s.Set(Behavior{FailRate: 0.5})
	var failed int
	for range 4 {
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		if errors.As(err, &ae) && ae.StatusCode == 500 && ae.Type == "server_error" {
			failed++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if failed != 2 {
		t.Fatalf("FailRate 0.5 failed %d of 4", failed)
	}
}

// TestAnthropicSDK: the official Anthropic SDK, unchanged, talks to the
// stand-in: a message with usage, a stream of SSE events it accumulates,
// token counting, the model list and its error types.
func TestAnthropicSDK(t *testing.T) {
	s := Start(t, Anthropic, WithModels("claude-haiku"))
	s.SetAnswers(map[string]string{"What is 2+2?": "The answer is 4"})
	c := anthropicClient(s, s.APIKey)
	ctx := context.Background()
	params := anthropic.MessageNewParams{Model: "claude-haiku", MaxTokens: 100,
		System:   []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is 2+2?"))}}
	msg, err := c.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "The answer is 4" || msg.StopReason != "end_turn" || msg.Usage.InputTokens != 5 || msg.Usage.OutputTokens != 4 {
		t.Fatalf("message = %+v usage %+v", msg.Content, msg.Usage)
	}
	st := c.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	var deltas int
	for st.Next() {
		ev := st.Current()
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "content_block_delta" {
			deltas++
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if deltas != 4 || acc.Content[0].Text != "The answer is 4" || acc.Usage.OutputTokens != 4 || acc.StopReason != "end_turn" {
		t.Fatalf("stream: %d deltas, %+v, usage %+v", deltas, acc.Content, acc.Usage)
	}
	n, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "claude-haiku",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is 2+2?"))}})
	if err != nil || n.InputTokens != 3 {
		t.Fatalf("count tokens = %+v, %v", n, err)
	}
	page, err := c.Models.List(ctx, anthropic.ModelListParams{})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "claude-haiku" {
		t.Fatalf("models = %+v, %v", page, err)
	}
	var ae *anthropic.Error
	badc := anthropicClient(s, "wrong")
	if _, err := badc.Messages.New(ctx, params); !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Type() != "authentication_error" {
		t.Fatalf("wrong key: %v", err)
	}
	s.Set(Behavior{RateLimitRate: 1})
	if _, err := c.Messages.New(ctx, params); !errors.As(err, &ae) || ae.StatusCode != 429 || ae.Type() != "rate_limit_error" || ae.Response.Header.Get("retry-after") != "1" {
		t.Fatalf("rate limited: %v", err)
	}
	s.Set(Behavior{FailRate: 1})
	if _, err := c.Messages.New(ctx, params); !errors.As(err, &ae) || ae.StatusCode != 500 || ae.Type() != "api_error" {
		t.Fatalf("failure: %v", err)
	}
}

// TestWrongRateIsExact: a server told to answer wrongly 10 % of the time
// gets exactly 10 of 100 known prompts wrong, the same ones each time.
func TestWrongRateIsExact(t *testing.T) {
	s := Start(t, Ollama)
	key := map[string]string{}
	for i := range 100 {
		key["question "+strings.Repeat("x", i)] = "right"
	}
	s.SetAnswers(key)
	for _, rate := range []float64{0.1, 0.5} {
		s.Set(Behavior{WrongRate: rate})
		wrong := 0
		for q := range key {
			if s.Answer("m", q) != "right" {
				wrong++
			}
		}
		if want := int(rate * 100); wrong != want {
			t.Fatalf("WrongRate %.1f: %d wrong, want %d", rate, wrong, want)
		}
	}
}

// TestEmbeddingSimilarity: texts sharing words are closer than texts that
// share none.
func TestEmbeddingSimilarity(t *testing.T) {
	cos := func(a, b []float32) float64 {
		var d float64
		for i := range a {
			d += float64(a[i]) * float64(b[i])
		}
		return d
	}
	same, near, far := cos(Embedding("Paris"), Embedding("paris.")), cos(Embedding("the city of Paris"), Embedding("Paris city")), cos(Embedding("Paris"), Embedding("banana"))
	if same < 0.999 || near < 0.5 || far > 0.3 {
		t.Fatalf("cosines same %.2f near %.2f far %.2f", same, near, far)
	}
}
