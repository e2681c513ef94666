package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxBodyBytes bounds a JSON request body; routes that take larger bodies
// (flows, sync batches) set their own bound.
const MaxBodyBytes = 1 << 20

// bindJSON decodes the request body strictly into v: JSON only (415
// otherwise), one value only, no key twice in any object, unknown fields
// refused, at most limit bytes (MaxBodyBytes when 0; 413 past it). On
// failure it writes the error naming the field and returns false.
func bindJSON(c *gin.Context, v any, limit int64) bool {
	body, ok := readJSON(c, limit)
	if !ok {
		return false
	}
	if err := strictUnmarshal(body, v); err != nil {
		abort(c, jsonError(err))
		return false
	}
	return true
}

// readJSON reads a JSON request body of at most limit bytes (MaxBodyBytes
// when 0) and checks its syntax: exactly one JSON value, in which no
// object has a key twice. A body that is not declared application/json is
// refused with 415 (a missing Content-Type too, unless the body is empty),
// a larger one with 413, a duplicate key with 400 naming it. On failure it
// writes the error and returns false.
func readJSON(c *gin.Context, limit int64) ([]byte, bool) {
	if limit <= 0 {
		limit = MaxBodyBytes
	}
	if e := checkJSONContentType(c); e != nil {
		abort(c, e)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		abort(c, jsonError(err))
		return nil, false
	}
	if e := checkJSONSyntax(body); e != nil {
		abort(c, e)
		return nil, false
	}
	return body, true
}

// checkJSONContentType refuses a body not declared as application/json
// (parameters such as charset are allowed). A body-less request needs no
// Content-Type.
func checkJSONContentType(c *gin.Context) *Error {
	ct := c.ContentType()
	if ct == "application/json" || (ct == "" && c.Request.ContentLength == 0) {
		return nil
	}
	return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: "send the body as application/json (Content-Type: application/json)"}
}

// checkJSONSyntax checks that body is exactly one JSON value and that no
// object in it, at any depth, has the same key twice (encoding/json would
// silently keep the last one). It reads the tokens once with a streaming
// decoder (jsontext), without building the value.
func checkJSONSyntax(body []byte) *Error {
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowInvalidUTF8(true))
	if _, err := dec.ReadValue(); err != nil {
		if errors.Is(err, io.EOF) {
			return Invalid("", "the body is empty; send a JSON object")
		}
		var se *jsontext.SyntacticError
		if errors.As(err, &se) && errors.Is(err, jsontext.ErrDuplicateName) {
			field := jsonPointerField(se.JSONPointer)
			return Invalid(field, fmt.Sprintf("duplicate key %q in the body (at %s); give each key once", se.JSONPointer.LastToken(), field))
		}
		return Invalid("", "the body is not valid JSON: "+strings.TrimPrefix(err.Error(), "jsontext: "))
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return Invalid("", "the body must hold exactly one JSON value")
	}
	return nil
}

// jsonPointerField turns a JSON pointer (/settings/adminAuth) into the
// dotted field name the API's errors use (settings.adminAuth).
func jsonPointerField(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
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
