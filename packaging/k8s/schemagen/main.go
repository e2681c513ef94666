// Command schemagen writes the Kubernetes JSON schemas the manifest test
// validates against (packaging/k8s/testdata/schemas), in the layout
// kubeconform reads (kind-group-version.json, standalone, strict), from
// Kubernetes' own published OpenAPI v2 document, api/openapi-spec/swagger.json
// of the k8s.io/kubernetes module (make kube-schemas fetches it through the
// Go module proxy). Only the kinds the manifests use are written.
//
// A schema is the kind's definition with the definitions it references
// (local $ref), made strict (no property the API does not define), with
// apiVersion and kind fixed to the kind's own, and the two Kubernetes
// types JSON Schema cannot say: IntOrString and Quantity.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kinds are the definitions written, by OpenAPI name.
var Kinds = []string{
	"io.k8s.api.apps.v1.StatefulSet",
	"io.k8s.api.core.v1.Service",
	"io.k8s.api.core.v1.ServiceAccount",
	"io.k8s.api.core.v1.ConfigMap",
	"io.k8s.api.core.v1.Secret",
	"io.k8s.api.policy.v1.PodDisruptionBudget",
	"io.k8s.api.networking.v1.NetworkPolicy",
}

func main() {
	swagger := flag.String("swagger", "", "api/openapi-spec/swagger.json of k8s.io/kubernetes")
	out := flag.String("out", "", "directory to write the schemas to")
	version := flag.String("version", "", "the k8s.io/kubernetes version the swagger.json is from, for the VERSION file")
	flag.Parse()
	if *swagger == "" || *out == "" {
		log.Fatal("usage: schemagen -swagger swagger.json -out DIR")
	}
	if err := run(*swagger, *out, *version); err != nil {
		log.Fatal(err)
	}
}

type document struct {
	Definitions map[string]map[string]any `json:"definitions"`
}

func run(swaggerPath, out, version string) error {
	b, err := os.ReadFile(swaggerPath)
	if err != nil {
		return err
	}
	var doc document
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", swaggerPath, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, name := range Kinds {
		schema, file, err := standalone(doc, name)
		if err != nil {
			return err
		}
		data, err := json.MarshalIndent(schema, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, file), append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	note := fmt.Sprintf("Kubernetes %s: api/openapi-spec/swagger.json of the Go module k8s.io/kubernetes@%s, by packaging/k8s/schemagen (make kube-schemas)\n", version, version)
	return os.WriteFile(filepath.Join(out, "VERSION"), []byte(note), 0o644)
}

// standalone returns the strict schema of definition name and its file
// name, e.g. statefulset-apps-v1.json.
func standalone(doc document, name string) (map[string]any, string, error) {
	def, ok := doc.Definitions[name]
	if !ok {
		return nil, "", fmt.Errorf("no definition %s", name)
	}
	gvk, err := groupVersionKind(def)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	defs := map[string]any{}
	var visit func(v any)
	visit = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				target := strings.TrimPrefix(ref, "#/definitions/")
				if _, done := defs[target]; !done {
					d := copyJSON(doc.Definitions[target]).(map[string]any)
					defs[target] = d
					visit(d)
				}
			}
			for _, c := range v {
				visit(c)
			}
		case []any:
			for _, c := range v {
				visit(c)
			}
		}
	}
	root := copyJSON(def).(map[string]any)
	visit(root)
	for n, d := range defs {
		defs[n] = special(n, d.(map[string]any))
	}
	strict(root)
	for _, d := range defs {
		strict(d)
	}
	props := root["properties"].(map[string]any)
	apiVersion := gvk.Version
	if gvk.Group != "" {
		apiVersion = gvk.Group + "/" + gvk.Version
	}
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion}}
	props["kind"] = map[string]any{"type": "string", "enum": []any{gvk.Kind}}
	root["required"] = mergeRequired(root["required"], "apiVersion", "kind")
	root["definitions"] = defs
	file := strings.ToLower(gvk.Kind)
	if gvk.Group != "" {
		file += "-" + strings.Split(gvk.Group, ".")[0]
	}
	return root, file + "-" + gvk.Version + ".json", nil
}

type gvk struct{ Group, Version, Kind string }

func groupVersionKind(def map[string]any) (gvk, error) {
	list, _ := def["x-kubernetes-group-version-kind"].([]any)
	if len(list) == 0 {
		return gvk{}, fmt.Errorf("no x-kubernetes-group-version-kind")
	}
	m := list[0].(map[string]any)
	return gvk{Group: m["group"].(string), Version: m["version"].(string), Kind: m["kind"].(string)}, nil
}

// special replaces the definitions whose JSON form JSON Schema cannot
// express with the plain type: an IntOrString is a string or an integer, a
// Quantity a string or a number.
func special(name string, d map[string]any) map[string]any {
	switch name {
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return map[string]any{"description": d["description"], "oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"description": d["description"], "oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	}
	return d
}

// strict forbids properties an object schema does not define, at every
// level, and drops the OpenAPI-only keys.
func strict(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if _, isSchema := c.(map[string]any); !isSchema && (strings.HasPrefix(k, "x-kubernetes-") || k == "format") {
				delete(v, k) // keywords, not properties (a property's value is a schema)
			}
		}
		if _, ok := v["properties"]; ok {
			if _, set := v["additionalProperties"]; !set {
				v["additionalProperties"] = false
			}
		}
		for k, c := range v {
			if k == "definitions" {
				continue
			}
			strict(c)
		}
	case []any:
		for _, c := range v {
			strict(c)
		}
	}
}

func mergeRequired(have any, names ...string) []any {
	seen := map[string]bool{}
	var out []string
	list, _ := have.([]any)
	for _, n := range list {
		seen[n.(string)] = true
		out = append(out, n.(string))
	}
	for _, n := range names {
		if !seen[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	res := make([]any, len(out))
	for i, n := range out {
		res[i] = n
	}
	return res
}

func copyJSON(v any) any {
	b, _ := json.Marshal(v)
	var c any
	_ = json.Unmarshal(b, &c)
	return c
}
