package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Error is the body of every API error:
//
//	{"error":{"code":"invalid_argument","message":"…","field":"memory_mb"}}
//
// Code is stable for scripts; Message is safe to show; Field names the
// request field at fault when there is one.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Invalid returns a 400 naming field.
func Invalid(field, message string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_argument", Message: message, Field: field}
}

// abort writes err as the API error body and stops the handler chain.
// Unknown errors become a 500 whose detail goes only to the log.
func abort(c *gin.Context, err error) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		for _, m := range statusMappers {
			if apiErr = m(err); apiErr != nil {
				break
			}
		}
	}
	if apiErr == nil {
		_ = c.Error(err) // logged by the access log with the request id
		apiErr = &Error{Status: http.StatusInternalServerError, Code: "internal",
			Message: "internal error; see the hub log for request " + c.GetString(ctxRequestID)}
	}
	c.AbortWithStatusJSON(apiErr.Status, gin.H{"error": apiErr})
}
