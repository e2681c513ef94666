package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/models"
)

// The LLM gateway: an OpenAI-compatible API (chat completions, streaming
// included, embeddings, the model list) that every hub serves to the
// runtimes it manages, authenticated with their instance token
// (REDFORGE_TOKEN). Provider keys never reach a flow.

// Gateway limits: what a request may carry.
const (
	MaxGatewayBody   = 4 << 20 // a request body
	MaxPromptBytes   = 1 << 20 // the text of every message together
	MaxMessages      = 1000    // messages in one request
	MaxEmbedInputs   = 2048    // inputs of one embeddings request
	MaxAnswerTokens  = 100_000 // max_tokens
	maxHeaderHintLen = 256     // x-redforge-* header values
)

// Request headers a caller routes with.
const (
	HeaderPriority   = "X-Redforge-Priority"
	HeaderMaxCost    = "X-Redforge-Max-Cost"       // US dollars
	HeaderMaxLatency = "X-Redforge-Max-Latency-Ms" // milliseconds
	HeaderFlow       = "X-Redforge-Flow"
)

func (s *Server) gatewayRoutes() {
	s.handle(http.MethodPost, "/v1/chat/completions", Perm(auth.ResourceLLM, auth.ActionCreate), s.chatCompletions)
	s.handle(http.MethodPost, "/v1/embeddings", Perm(auth.ResourceLLM, auth.ActionCreate), s.embeddings)
	s.handle(http.MethodGet, "/v1/models", Perm(auth.ResourceLLM, auth.ActionRead), s.gatewayModels)
}

// gwError writes an error in the shape both the hub's clients and
// OpenAI's SDKs read: {"error":{"code","message","field","type","param"}}.
func gwError(c *gin.Context, e *Error) {
	typ := "invalid_request_error"
	switch {
	case e.Status >= 500:
		typ = "server_error"
	case e.Status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case e.Status == http.StatusUnauthorized:
		typ = "authentication_error"
	}
	body := gin.H{"code": e.Code, "message": e.Message, "type": typ, "param": nil}
	if e.Field != "" {
		body["field"], body["param"] = e.Field, e.Field
	}
	c.AbortWithStatusJSON(e.Status, gin.H{"error": body})
}

// gwFail maps a gateway error to its API error.
func (s *Server) gwFail(c *gin.Context, err error) {
	var e *Error
	var be *models.BudgetError
	var ce *models.ChainError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &be):
		e = &Error{Status: http.StatusTooManyRequests, Code: "budget_exceeded", Message: "daily LLM budget spent: " + be.Error()}
	case errors.Is(err, models.ErrNoModel):
		e = &Error{Status: http.StatusNotFound, Code: "model_not_found", Message: err.Error() + " (GET /v1/models lists them)", Field: "model"}
	case errors.Is(err, models.ErrNoCandidate):
		field := "model"
		if strings.Contains(err.Error(), "context") {
			field = "messages"
		}
		e = &Error{Status: http.StatusBadRequest, Code: "no_candidate", Message: err.Error(), Field: field}
	case errors.As(err, &ce) && ce.RateLimited:
		if ce.RetryAfter > 0 {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(ce.RetryAfter.Seconds()))))
		}
		e = &Error{Status: http.StatusTooManyRequests, Code: "upstream_rate_limited", Message: err.Error()}
	case errors.As(err, &ce) && ce.Deadline:
		e = &Error{Status: http.StatusGatewayTimeout, Code: "upstream_timeout", Message: err.Error()}
	case errors.As(err, &ce):
		e = &Error{Status: http.StatusBadGateway, Code: "upstream_failed", Message: err.Error()}
	default:
		_ = c.Error(err)
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; see the hub log for request " + c.GetString(ctxRequestID)}
	}
	gwError(c, e)
}

// gwContent is a message content: a string or an array of text parts.
type gwContent string

func (t *gwContent) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*t = gwContent(str)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New("content must be a string or an array of text parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return fmt.Errorf("content part of type %q: the gateway takes text only", p.Type)
		}
		sb.WriteString(p.Text)
	}
	*t = gwContent(sb.String())
	return nil
}

// gwStop is a stop field: a string or an array of strings.
type gwStop []string

func (t *gwStop) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*t = gwStop{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or an array of strings")
	}
	*t = many
	return nil
}

// chatRequest is the OpenAI chat completion request, as far as the
// gateway serves it.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string    `json:"role"`
		Content gwContent `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int64            `json:"max_tokens"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	Temperature         *float64          `json:"temperature"`
	TopP                *float64          `json:"top_p"`
	Stop                gwStop            `json:"stop"`
	N                   *int              `json:"n"`
	Tools               json.RawMessage   `json:"tools"`
	Functions           json.RawMessage   `json:"functions"`
	Metadata            map[string]string `json:"metadata"`
}

// gwBody reads a gateway request body (JSON, at most MaxGatewayBody).
func gwBody(c *gin.Context, v any) bool {
	body, ok := readJSON(c, MaxGatewayBody)
	if !ok {
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		e := jsonError(err)
		var ae *Error
		if errors.As(e, &ae) {
			gwError(c, ae)
		} else {
			gwError(c, Invalid("body", "the body is not a valid request: "+err.Error()))
		}
		return false
	}
	return true
}

// call builds the routed call's identity and hints from the principal
// and headers.
func (s *Server) call(c *gin.Context, model string, meta map[string]string) (models.Call, *Error) {
	p := principal(c)
	call := models.Call{Model: model}
	if p.Scope == auth.ScopeInstance {
		call.Instance = p.InstanceID
	}
	flow := c.GetHeader(HeaderFlow)
	if flow == "" && meta != nil {
		flow = meta["flow"]
	}
	if e := hint(HeaderFlow, flow); e != nil {
		return call, e
	}
	call.Flow = flow
	switch pr := strings.ToLower(c.GetHeader(HeaderPriority)); pr {
	case "", models.PriorityNormal, models.PriorityCritical, models.PriorityBatch:
		call.Hints.Priority = pr
	default:
		return call, Invalid(HeaderPriority, HeaderPriority+" must be critical, normal or batch")
	}
	if v := c.GetHeader(HeaderMaxCost); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 1e6 {
			return call, Invalid(HeaderMaxCost, HeaderMaxCost+" must be a cost in US dollars above 0")
		}
		call.Hints.MaxCostUSD = f
	}
	if v := c.GetHeader(HeaderMaxLatency); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > 3_600_000 {
			return call, Invalid(HeaderMaxLatency, HeaderMaxLatency+" must be milliseconds between 1 and 3600000")
		}
		call.Hints.MaxLatency = time.Duration(n) * time.Millisecond
	}
	if e := hint("model", model); e != nil {
		return call, e
	}
	return call, nil
}

// hint checks a name-like value: bounded, printable.
func hint(field, v string) *Error {
	if len(v) > maxHeaderHintLen || strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return Invalid(field, fmt.Sprintf("%s must be at most %d printable characters", field, maxHeaderHintLen))
	}
	return nil
}

func (s *Server) chatCompletions(c *gin.Context) {
	var req chatRequest
	if !gwBody(c, &req) {
		return
	}
	call, e := s.call(c, req.Model, req.Metadata)
	if e == nil {
		call.Chat, e = chatOf(req)
	}
	if e != nil {
		gwError(c, e)
		return
	}
	if req.Stream {
		s.streamChat(c, call, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
		return
	}
	res, err := s.cfg.Models.Chat(c.Request.Context(), call)
	if err != nil {
		s.gwFail(c, err)
		return
	}
	gwHeaders(c, res)
	c.JSON(http.StatusOK, gin.H{
		"id": completionID(), "object": "chat.completion", "created": time.Now().Unix(), "model": res.Model.ID,
		"choices": []gin.H{{"index": 0, "message": gin.H{"role": "assistant", "content": res.Response.Content, "refusal": nil},
			"logprobs": nil, "finish_reason": finishOr(res.Response.FinishReason)}},
		"usage": usageJSON(res.Usage),
	})
}

// chatOf checks a chat request and turns it into the gateway's terms.
func chatOf(req chatRequest) (models.ChatRequest, *Error) {
	var out models.ChatRequest
	switch {
	case len(req.Messages) == 0:
		return out, Invalid("messages", "messages must list at least one message")
	case len(req.Messages) > MaxMessages:
		return out, Invalid("messages", fmt.Sprintf("at most %d messages", MaxMessages))
	case req.N != nil && *req.N != 1:
		return out, Invalid("n", "the gateway answers with one choice (n=1)")
	case len(req.Tools) > 0 && string(req.Tools) != "null" || len(req.Functions) > 0 && string(req.Functions) != "null":
		return out, Invalid("tools", "tools and functions are not served by the gateway")
	case req.Temperature != nil && (math.IsNaN(*req.Temperature) || *req.Temperature < 0 || *req.Temperature > 2):
		return out, Invalid("temperature", "temperature must be between 0 and 2")
	case req.TopP != nil && (math.IsNaN(*req.TopP) || *req.TopP < 0 || *req.TopP > 1):
		return out, Invalid("top_p", "top_p must be between 0 and 1")
	case len(req.Stop) > 4:
		return out, Invalid("stop", "at most 4 stop sequences")
	}
	size := 0
	for i, m := range req.Messages {
		role := m.Role
		switch role {
		case "developer":
			role = "system"
		case "system", "user", "assistant":
		default:
			return out, Invalid(fmt.Sprintf("messages[%d].role", i), "role must be system, developer, user or assistant")
		}
		size += len(m.Content)
		out.Messages = append(out.Messages, models.Message{Role: role, Content: string(m.Content)})
	}
	if size > MaxPromptBytes {
		return out, &Error{Status: http.StatusRequestEntityTooLarge, Code: "prompt_too_large", Field: "messages",
			Message: fmt.Sprintf("the messages hold %d bytes of text; at most %d", size, MaxPromptBytes)}
	}
	limit := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		limit = req.MaxCompletionTokens
	}
	if limit != nil {
		if *limit < 1 || *limit > MaxAnswerTokens {
			return out, Invalid("max_tokens", fmt.Sprintf("max_tokens must be between 1 and %d", MaxAnswerTokens))
		}
		out.MaxTokens = *limit
	}
	out.Temperature, out.TopP, out.Stop = req.Temperature, req.TopP, req.Stop
	return out, nil
}

func finishOr(f string) string {
	if f == "" {
		return "stop"
	}
	return f
}

func usageJSON(u models.Usage) gin.H {
	return gin.H{"prompt_tokens": u.InputTokens, "completion_tokens": u.OutputTokens, "total_tokens": u.InputTokens + u.OutputTokens}
}

func completionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "chatcmpl-" + hex.EncodeToString(b[:])
}

// gwHeaders says how the call was routed.
func gwHeaders(c *gin.Context, res models.Result) {
	c.Header("X-Redforge-Model", res.Model.ID)
	if res.Plan.Route != "" {
		c.Header("X-Redforge-Route", res.Plan.Route)
	}
	c.Header("X-Redforge-Fallbacks", strconv.Itoa(len(res.Attempts)))
	c.Header("X-Redforge-Cost-Usd", strconv.FormatFloat(res.CostUSD, 'f', -1, 64))
}

// streamChat serves a streamed completion as server-sent events: a chunk
// per piece as the provider sends it, then the finish chunk, the usage
// chunk when asked for, and [DONE]. An error before the first piece is an
// ordinary error answer; after it, an error event ends the stream.
func (s *Server) streamChat(c *gin.Context, call models.Call, includeUsage bool) {
	id, created := completionID(), time.Now().Unix()
	started := false
	write := func(model string, delta gin.H, finish any, usage any) error {
		choices := []gin.H{}
		if delta != nil {
			choices = append(choices, gin.H{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish})
		}
		b, _ := json.Marshal(gin.H{"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices, "usage": usage})
		if _, err := c.Writer.Write(append(append([]byte("data: "), b...), '\n', '\n')); err != nil {
			return err
		}
		c.Writer.Flush()
		return nil
	}
	res, err := s.cfg.Models.Stream(c.Request.Context(), call, func(m catalog.Model, ch models.Chunk) error {
		if !started {
			started = true
			c.Header("Content-Type", "text/event-stream; charset=utf-8")
			c.Header("Cache-Control", "no-cache")
			c.Header("X-Accel-Buffering", "no")
			c.Header("X-Redforge-Model", m.ID)
			c.Status(http.StatusOK)
			if err := write(m.ID, gin.H{"role": "assistant", "content": ""}, nil, nil); err != nil {
				return err
			}
		}
		if ch.Content == "" {
			return nil
		}
		return write(m.ID, gin.H{"content": ch.Content}, nil, nil)
	})
	if !started {
		if err == nil {
			err = errors.New("the stream ended before it began")
		}
		s.gwFail(c, err)
		return
	}
	if err != nil {
		b, _ := json.Marshal(gin.H{"error": gin.H{"code": "stream_interrupted", "message": err.Error(), "type": "server_error"}})
		_, _ = c.Writer.Write(append(append([]byte("data: "), b...), '\n', '\n'))
		c.Writer.Flush()
		return
	}
	_ = write(res.Model.ID, gin.H{}, finishOr(res.Response.FinishReason), nil)
	if includeUsage {
		_ = write(res.Model.ID, nil, nil, usageJSON(res.Usage))
	}
	_, _ = c.Writer.Write([]byte("data: [DONE]\n\n"))
	c.Writer.Flush()
}

type embedRequest struct {
	Model          string            `json:"model"`
	Input          json.RawMessage   `json:"input"`
	EncodingFormat string            `json:"encoding_format"`
	Metadata       map[string]string `json:"metadata"`
}

func (s *Server) embeddings(c *gin.Context) {
	var req embedRequest
	if !gwBody(c, &req) {
		return
	}
	call, e := s.call(c, req.Model, req.Metadata)
	if e != nil {
		gwError(c, e)
		return
	}
	var one string
	var many []string
	switch {
	case json.Unmarshal(req.Input, &one) == nil:
		many = []string{one}
	case json.Unmarshal(req.Input, &many) == nil && len(many) > 0 && len(many) <= MaxEmbedInputs:
	default:
		gwError(c, Invalid("input", fmt.Sprintf("input must be a string or an array of 1 to %d strings", MaxEmbedInputs)))
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		gwError(c, Invalid("encoding_format", "encoding_format must be float or base64"))
		return
	}
	call.Embed = models.EmbedRequest{Input: many}
	res, err := s.cfg.Models.Embed(c.Request.Context(), call)
	if err != nil {
		s.gwFail(c, err)
		return
	}
	data := make([]gin.H, len(res.Vectors))
	for i, v := range res.Vectors {
		var emb any = v
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(v))
			for j, x := range v {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(x))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data[i] = gin.H{"object": "embedding", "index": i, "embedding": emb}
	}
	gwHeaders(c, res)
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data, "model": res.Model.ID,
		"usage": gin.H{"prompt_tokens": res.Usage.InputTokens, "total_tokens": res.Usage.InputTokens}})
}

// gatewayModels lists what a request may name: every usable model
// version, the bare names of models with a current version, and routes.
func (s *Server) gatewayModels(c *gin.Context) {
	data := []gin.H{}
	names := map[string]bool{}
	for _, m := range s.cfg.Catalog.Models() {
		if m.Status == models.StatusDisabled {
			continue
		}
		data = append(data, gin.H{"id": m.ID, "object": "model", "created": m.CreatedAt.Unix(), "owned_by": m.Provider})
		if m.Current && !names[m.Name] {
			names[m.Name] = true
			data = append(data, gin.H{"id": m.Name, "object": "model", "created": m.CreatedAt.Unix(), "owned_by": m.Provider})
		}
	}
	for _, r := range s.cfg.Catalog.LLMRoutes() {
		data = append(data, gin.H{"id": r.Name, "object": "model", "created": r.CreatedAt.Unix(), "owned_by": "redforge-route"})
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}
