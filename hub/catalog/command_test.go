package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// allCommands returns at least one command of every type.
func allCommands() []Command {
	cmds := fixtureCommands()
	return append(cmds,
		DeleteInstance("i-2"), DeleteDeployment("d-2"), DeleteUser("u-2"),
		DeleteAPIToken("t-1"), DeleteEdge("g-2"), DeleteEnrollmentToken("e2"),
		UpsertInstance(Instance{ID: "i-3", Name: "x"}, IfIndex(0)),
	)
}

func TestEveryCommandTypeHasAConstructor(t *testing.T) {
	seen := map[CommandType]bool{}
	for _, c := range allCommands() {
		seen[c.Type] = true
	}
	for typ := range commandSpecs {
		if !seen[typ] {
			t.Errorf("no test command of type %s", typ)
		}
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range allCommands() {
		b, err := c.Encode()
		if err != nil {
			t.Fatalf("encode %s: %v", c.Type, err)
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("decode %s: %v", c.Type, err)
		}
		if got.Type != c.Type || got.Version != c.Version || !bytes.Equal(got.Payload, c.Payload) {
			t.Fatalf("round trip of %s: got %+v, want %+v", c.Type, got, c)
		}
	}
}

func TestDecodeCommandRefuses(t *testing.T) {
	valid, err := DeleteInstance("i-1").Encode()
	if err != nil {
		t.Fatal(err)
	}
	with := func(i int, v byte) []byte { b := bytes.Clone(valid); b[i] = v; return b }
	cases := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "want at least 3"},
		{"short", []byte{encodingV1, 2}, "want at least 3"},
		{"unknown encoding", with(0, 0x7f), "unknown encoding"},
		{"unknown type", with(1, 200), "unknown command type 200"},
		{"version 0", with(2, 0), "version 0"},
		{"newer version", with(2, 9), "newer than this hub understands"},
		{"payload not JSON", append(valid[:3:3], "{nope"...), "delete_instance payload"},
		{"unknown field", append(valid[:3:3], `{"key":"a","extra":1}`...), "unknown field"},
		{"trailing data", append(bytes.Clone(valid), "]"...), "trailing data"},
		{"wrong shape", append(valid[:3:3], `{"key":7}`...), "cannot unmarshal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCommand(tc.in)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("DecodeCommand: %v, want ErrInvalid mentioning %q", err, tc.msg)
			}
		})
	}
}

// TestEncodeRefusesWhatDecodeWould: a hand-built command that no hub could
// decode must never reach the log (the FSM panics on such an entry).
func TestEncodeRefusesWhatDecodeWould(t *testing.T) {
	for _, c := range []Command{
		{Type: CmdDeleteInstance, Version: 1, Payload: json.RawMessage("{garbage")},
		{Type: CmdDeleteInstance, Version: 1, Payload: json.RawMessage(`{"key":"a","extra":1}`)},
		{Type: CmdDeleteInstance, Version: 1},
		{Type: CmdDeleteInstance, Version: 2, Payload: json.RawMessage(`{"key":"a"}`)},
		{Type: 250, Version: 1, Payload: json.RawMessage(`{}`)},
	} {
		if b, err := c.Encode(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Encode(%+v) = %q, %v; want ErrInvalid", c, b, err)
		}
	}
}

func TestCommandConstructionError(t *testing.T) {
	for _, c := range []Command{
		PutSetting("bad", math.NaN()),
		PutSetting("bad", json.RawMessage("{not json")),
		PutDeployment(Deployment{ID: "d", InstanceID: "i", Smoke: json.RawMessage("{")}),
	} {
		if !errors.Is(c.Err(), ErrInvalid) {
			t.Fatalf("Err() = %v, want ErrInvalid", c.Err())
		}
		if _, err := c.Encode(); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Encode: %v, want ErrInvalid", err)
		}
		a := newApplier(t)
		a.fails(c, ErrInvalid)
		if a.s.Index() != a.index {
			t.Fatalf("Index() = %d after a failed command, want %d", a.s.Index(), a.index)
		}
	}
}

// FuzzDecodeCommand feeds garbage to the decoder: it must return an error
// or a command that re-encodes to the same bytes and applies without panic.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range allCommands() {
		b, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{encodingV1, byte(CmdPutSetting), 1, 'n', 'u', 'l', 'l'})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("decode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := c.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encode: %q, %v; want %q", again, err, b)
		}
		s := NewState()
		if _, err := s.Apply(1, c); err != nil && !isCatalogError(err) {
			t.Fatalf("apply: unexpected error %v", err)
		}
		if s.Index() != 1 {
			t.Fatalf("Index() = %d after apply at 1", s.Index())
		}
	})
}

func isCatalogError(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict)
}

func TestCommandTypeString(t *testing.T) {
	if got := CmdUpsertInstance.String(); got != "upsert_instance" {
		t.Fatalf("String() = %q", got)
	}
	if got := CommandType(250).String(); got != "command type 250" {
		t.Fatalf("String() = %q", got)
	}
}

// TestResultTypesAreListed: every result an applied command returns is of
// a type ResultTypes lists (hub/cluster registers them for forwarding).
func TestResultTypesAreListed(t *testing.T) {
	known := map[string]bool{}
	for _, v := range ResultTypes() {
		known[fmt.Sprintf("%T", v)] = true
	}
	a := newApplier(t)
	for _, cmd := range allCommands() {
		res, err := a.apply(cmd)
		if err != nil || res == nil {
			continue
		}
		if !known[fmt.Sprintf("%T", res)] {
			t.Errorf("%s returns a %T, which ResultTypes does not list", cmd.Type, res)
		}
	}
}
