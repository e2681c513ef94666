package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of details JSON.
const maxJSONDepth = 64

// maxSafeInteger is 2^53: integers beyond it cannot be kept exactly by
// RFC 8785 (which serializes numbers as IEEE 754 doubles).
const maxSafeInteger = 1 << 53

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of
// the JSON value raw: no insignificant whitespace, object members sorted by
// the UTF-16 code units of their names, numbers in ECMAScript's shortest
// form, strings with the minimal escapes. It refuses what JCS cannot
// represent faithfully: invalid UTF-8, lone surrogate escapes, duplicate
// member names, numbers out of the double range, and integers beyond ±2^53
// (send those as strings); and nesting deeper than 64.
func Canonicalize(raw []byte) ([]byte, error) {
	return canonicalize(raw, nil)
}

// canonicalize is Canonicalize; member names in redact (lower case) have
// their values replaced by "[REDACTED]".
func canonicalize(raw []byte, redact map[string]bool) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := checkSurrogates(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	c := &canonicalizer{dec: dec, redact: redact}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	var buf bytes.Buffer
	if err := c.value(&buf, tok, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return buf.Bytes(), nil
}

func jsonErr(err error) error {
	if err == io.EOF {
		return errors.New("empty JSON")
	}
	return err
}

type canonicalizer struct {
	dec    *json.Decoder
	redact map[string]bool
}

func (c *canonicalizer) value(buf *bytes.Buffer, tok json.Token, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return c.object(buf, depth+1)
		}
		if v == '[' {
			return c.array(buf, depth+1)
		}
		return fmt.Errorf("unexpected %q", v)
	case string:
		writeString(buf, v)
	case json.Number:
		s, err := esNumber(string(v))
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case nil:
		buf.WriteString("null")
	default:
		return fmt.Errorf("unexpected token %v", tok)
	}
	return nil
}

type member struct {
	name  string
	key   []uint16
	value []byte
}

func (c *canonicalizer) object(buf *bytes.Buffer, depth int) error {
	var ms []member
	for c.dec.More() {
		kt, err := c.dec.Token()
		if err != nil {
			return err
		}
		name, _ := kt.(string)
		vt, err := c.dec.Token()
		if err != nil {
			return err
		}
		var vb bytes.Buffer
		if err := c.value(&vb, vt, depth); err != nil {
			return err
		}
		if c.redact[strings.ToLower(name)] {
			vb.Reset()
			writeString(&vb, Redacted)
		}
		ms = append(ms, member{name: name, key: utf16.Encode([]rune(name)), value: vb.Bytes()})
	}
	if _, err := c.dec.Token(); err != nil { // '}'
		return err
	}
	slices.SortFunc(ms, func(a, b member) int { return slices.Compare(a.key, b.key) })
	buf.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			if m.name == ms[i-1].name {
				return fmt.Errorf("duplicate member name %q", m.name)
			}
			buf.WriteByte(',')
		}
		writeString(buf, m.name)
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return nil
}

func (c *canonicalizer) array(buf *bytes.Buffer, depth int) error {
	buf.WriteByte('[')
	for i := 0; c.dec.More(); i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		t, err := c.dec.Token()
		if err != nil {
			return err
		}
		if err := c.value(buf, t, depth); err != nil {
			return err
		}
	}
	if _, err := c.dec.Token(); err != nil { // ']'
		return err
	}
	buf.WriteByte(']')
	return nil
}

// writeString writes s as JCS does (ECMAScript JSON.stringify): '"' and
// '\' escaped, \b \t \n \f \r in short form, other control characters as
// \u00xx, everything else as is.
func writeString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			buf.WriteByte('\\')
			buf.WriteByte(c)
		case '\b':
			buf.WriteString(`\b`)
		case '\t':
			buf.WriteString(`\t`)
		case '\n':
			buf.WriteString(`\n`)
		case '\f':
			buf.WriteString(`\f`)
		case '\r':
			buf.WriteString(`\r`)
		default:
			if c < 0x20 {
				buf.WriteString(`\u00`)
				buf.WriteByte(hex[c>>4])
				buf.WriteByte(hex[c&0xf])
			} else {
				buf.WriteByte(c)
			}
		}
	}
	buf.WriteByte('"')
}

// esNumber formats a JSON number literal as ECMAScript's Number.toString
// of its IEEE 754 double, as RFC 8785 §3.2.2.3 requires.
func esNumber(lit string) (string, error) {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("number %s is out of range", lit)
	}
	if !strings.ContainsAny(lit, ".eE") {
		if n, err := strconv.ParseInt(lit, 10, 64); err != nil || n > maxSafeInteger || n < -maxSafeInteger {
			return "", fmt.Errorf("integer %s is beyond ±2^53 and cannot be kept exactly; send it as a string", lit)
		}
	}
	if f == 0 {
		return "0", nil // also -0
	}
	format := byte('f')
	if a := math.Abs(f); a < 1e-6 || a >= 1e21 {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, 64)
	if format == 'e' { // Go writes e+21, e-07; ECMAScript e+21, e-7
		mant, exp, _ := strings.Cut(s, "e")
		s = mant + "e" + exp[:1] + strings.TrimLeft(exp[1:], "0")
	}
	return s, nil
}

// checkSurrogates refuses \u escapes of lone UTF-16 surrogates, which
// encoding/json would silently turn into U+FFFD (changing the data).
// Backslashes occur only inside strings in valid JSON, so a linear scan of
// escape sequences is enough; invalid JSON is refused later by the parser.
func checkSurrogates(raw []byte) error {
	pendingHigh := false
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			if pendingHigh {
				return errors.New("lone UTF-16 surrogate escape")
			}
			continue
		}
		if raw[i+1] != 'u' || i+5 >= len(raw) {
			if pendingHigh {
				return errors.New("lone UTF-16 surrogate escape")
			}
			i++
			continue
		}
		v, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		if err != nil {
			return errors.New("bad \\u escape")
		}
		switch {
		case v >= 0xD800 && v <= 0xDBFF:
			if pendingHigh {
				return errors.New("lone UTF-16 surrogate escape")
			}
			pendingHigh = true
		case v >= 0xDC00 && v <= 0xDFFF:
			if !pendingHigh {
				return errors.New("lone UTF-16 surrogate escape")
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return errors.New("lone UTF-16 surrogate escape")
			}
		}
		i += 5
	}
	if pendingHigh {
		return errors.New("lone UTF-16 surrogate escape")
	}
	return nil
}
