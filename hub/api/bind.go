package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// MaxBodyBytes bounds a JSON request body; routes that take larger bodies
// (flows, sync batches) set their own bound.
const MaxBodyBytes = 1 << 20

// bindJSON decodes the request body strictly into v: JSON only, unknown
// fields refused, one value only, at most limit bytes (MaxBodyBytes when
// 0). On failure it writes a 400 (or 413/415) naming the field and returns
// false.
func bindJSON(c *gin.Context, v any, limit int64) bool {
	if limit <= 0 {
		limit = MaxBodyBytes
	}
	if ct := c.ContentType(); ct != "" && ct != "application/json" {
		abort(c, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send the body as application/json"})
		return false
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		abort(c, jsonError(err))
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		abort(c, Invalid("", "the body must hold exactly one JSON value"))
		return false
	}
	return true
}

// jsonError turns a decoding error into an API error naming the field.
func jsonError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: "the body is larger than the route accepts"}
	case errors.Is(err, io.EOF):
		return Invalid("", "the body is empty; send a JSON object")
	case errors.As(err, &typeErr):
		return Invalid(typeErr.Field, typeErr.Field+" must be "+jsonKind(typeErr.Type.Kind().String())+", not "+typeErr.Value)
	case errors.As(err, &syntaxErr):
		return Invalid("", "the body is not valid JSON: "+syntaxErr.Error())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid(field, "unknown field "+field)
	}
	return Invalid("", "the body is not valid: "+err.Error())
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return k
}
