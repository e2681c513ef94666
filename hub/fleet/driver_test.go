package fleet_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/fleet"
)

func validSpec() fleet.Spec {
	return fleet.Spec{InstanceID: "i-1", Port: 18800, AdminUser: "hub", AdminPassword: "pw"}
}

func TestSpecValidate(t *testing.T) {
	host := fleet.Limits{CPUs: 2, MemoryMB: 4096}
	ok := []func(*fleet.Spec){
		func(s *fleet.Spec) {},
		func(s *fleet.Spec) { s.CPU, s.MemoryMB = 2, 4096 },
		func(s *fleet.Spec) { s.CPU, s.MemoryMB = 0.25, fleet.MinMemoryMB },
		func(s *fleet.Spec) { s.Env = map[string]string{"_A1": "any \"value\"\n"} },
		func(s *fleet.Spec) { s.InstanceID = strings.Repeat("a", 63) },
	}
	for i, edit := range ok {
		s := validSpec()
		edit(&s)
		if err := s.Validate(host); err != nil {
			t.Errorf("valid spec #%d: %v", i, err)
		}
	}
	bad := []struct {
		edit  func(*fleet.Spec)
		field string
	}{
		{func(s *fleet.Spec) { s.CPU = 2.5 }, "cpu"},
		{func(s *fleet.Spec) { s.MemoryMB = 127 }, "memory_mb"},
		{func(s *fleet.Spec) { s.MemoryMB = 4097 }, "memory_mb"},
		{func(s *fleet.Spec) { s.InstanceID = strings.Repeat("a", 64) }, "instance_id"},
		{func(s *fleet.Spec) { s.InstanceID = "a/b" }, "instance_id"},
		{func(s *fleet.Spec) { s.InstanceID = ".hidden" }, "instance_id"},
		{func(s *fleet.Spec) { s.Env = map[string]string{"": "x"} }, "env."},
		{func(s *fleet.Spec) { s.AdminPassword = strings.Repeat("p", 73) }, "admin_password"},
		{func(s *fleet.Spec) { s.ExtraSettings = map[string]any{"adminAuth": 1} }, "extra_settings.adminAuth"},
	}
	for _, tc := range bad {
		s := validSpec()
		tc.edit(&s)
		err := s.Validate(host)
		var se *fleet.SpecError
		if !errors.Is(err, fleet.ErrInvalidSpec) || !errors.As(err, &se) || se.Field != tc.field {
			t.Errorf("Validate: %v, want ErrInvalidSpec naming %q", err, tc.field)
		}
	}
	// Without known host limits only the fixed bounds apply.
	s := validSpec()
	s.CPU, s.MemoryMB = 512, 1<<20
	if err := s.Validate(fleet.Limits{}); err != nil {
		t.Errorf("no host limits: %v", err)
	}
}

func TestSpecHash(t *testing.T) {
	a := validSpec()
	a.Env = map[string]string{"A": "1", "B": "2"}
	b := a
	b.AdminPassword = "other"
	b.Env = map[string]string{"B": "2", "A": "1"}
	if fleet.SpecHash(a) != fleet.SpecHash(b) {
		t.Error("hash depends on the password or map order")
	}
	b.MemoryMB = 256
	if fleet.SpecHash(a) == fleet.SpecHash(b) {
		t.Error("hash ignores memory")
	}
}
