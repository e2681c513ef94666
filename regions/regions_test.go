package regions

import (
	"errors"
	"strings"
	"testing"
)

const good = `{
  "regions": [
    {"name": "us", "store": "postgres://pg-us/tower", "redis": "redis://redis-us:6379/0", "failover_to": ["eu"]},
    {"name": "eu"},
    {"name": "apac"}
  ],
  "hubs": [
    {"id": "hub-us-1", "region": "us", "api": "http://10.0.1.1:3000", "raft": "10.0.1.1:7000"},
    {"id": "hub-eu-1", "region": "eu", "api": "http://10.0.2.1:3000", "raft": "10.0.2.1:7000"},
    {"id": "hub-apac-1", "region": "apac", "api": "http://10.0.3.1:3000", "raft": "10.0.3.1:7000"}
  ],
  "placement": [{"match": "billing-*", "region": "eu", "policy": "pinned"}]
}`

func TestParseGood(t *testing.T) {
	top, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if hs := top.HubsIn("eu"); len(hs) != 1 || hs[0].ID != "hub-eu-1" {
		t.Fatalf("HubsIn(eu) = %+v", hs)
	}
	if r, ok := top.Region("us"); !ok || r.Redis != "redis://redis-us:6379/0" || r.FailoverTo[0] != "eu" {
		t.Fatalf("Region(us) = %+v %v", r, ok)
	}
	if h, ok := top.Hub("hub-apac-1"); !ok || h.Region != "apac" {
		t.Fatalf("Hub = %+v", h)
	}
	if p, ok := top.PlacementFor("billing-eu"); !ok || p.Region != "eu" || p.Policy != PolicyPinned {
		t.Fatalf("PlacementFor = %+v %v", p, ok)
	}
	if _, ok := top.PlacementFor("other"); ok {
		t.Fatal("PlacementFor(other) matched")
	}
}

// TestValidateReportsEveryMistake: one bad topology, every mistake named by
// its field in one error.
func TestValidateReportsEveryMistake(t *testing.T) {
	top := Topology{
		Regions: []Region{{Name: "us", FailoverTo: []string{"us", "mars"}}, {Name: "eu"}, {Name: "eu"}, {Name: "Bad Name"}, {Name: "apac"}},
		Hubs: []Hub{
			{ID: "a", Region: "us", API: "http://a:3000", Raft: "a:7000"},
			{ID: "a", Region: "eu", API: "http://b:3000"},
			{ID: "c", Region: "atlantis", API: "http://a:3000", Raft: "a:7000"},
			{Region: "eu"},
		},
		Placement: []Rule{{Match: "[", Region: "moon", Policy: "sometimes"}},
	}
	err := top.Validate()
	want := []string{
		`regions[2].name: duplicate region "eu"`,
		`regions[3].name: "Bad Name" must be lowercase`,
		`hubs[1].id: duplicate hub "a"`,
		`hubs[2].region: hub "c" names unknown region "atlantis"`,
		`hubs[2].api: duplicate hub address "http://a:3000"`,
		`hubs[2].raft: duplicate raft address "a:7000"`,
		`hubs[3].id: required`,
		`hubs[3].api: required`,
		`regions[3]: region "Bad Name" has no hub`,
		`regions[4]: region "apac" has no hub`,
		`regions[0].failover_to[0]: region "us" cannot fail over to itself`,
		`regions[0].failover_to[1]: unknown region "mars"`,
		`placement[0].match: "[" is not a name pattern`,
		`placement[0].region: unknown region "moon"`,
		`placement[0].policy: "sometimes" is not pinned or failover`,
	}
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error is not a *FieldError: %T", err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("got %d mistakes, want %d:\n%v", n, len(want), err)
	}
}

func TestParseRefusesUnknownFieldsAndEmpty(t *testing.T) {
	if _, err := Parse([]byte(`{"regions":[{"name":"us","hubz":[]}]}`)); err == nil || !strings.Contains(err.Error(), "hubz") {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := Parse([]byte(`{}`)); err == nil || !strings.Contains(err.Error(), "at least one region") {
		t.Fatalf("empty: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"regions":[{"name":"x"}],"hubs":[{"id":"h","region":"x","api":"u"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		top, err := Parse(b)
		if err == nil && top.Validate() != nil {
			t.Fatal("Parse accepted a topology Validate refuses")
		}
	})
}
