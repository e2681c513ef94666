// Package k8s holds the Kubernetes manifests of the hubs (base and one
// kustomize overlay per region) and the test that renders and validates
// them; schemagen writes the schemas the test validates against.
package k8s

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/yannh/kubeconform/pkg/validator"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/redforge/controltower/hub"
)

// Regions are the overlays.
var Regions = []string{"us", "eu", "apac"}

// newValidator validates strictly (no field the API does not define)
// against the schemas vendored in testdata/schemas (Kubernetes v1.37.2,
// see its VERSION file), with no network.
func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := validator.New([]string{dir + "/{{ .ResourceKind }}{{ .KindSuffix }}.json"}, validator.Opts{Strict: true, KubernetesVersion: "1.37.2"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// validate fails the test for every resource in manifests that is not
// valid; it returns how many were.
func validate(t *testing.T, v validator.Validator, name string, manifests []byte) int {
	t.Helper()
	valid := 0
	for _, r := range v.Validate(name, io.NopCloser(bytes.NewReader(manifests))) {
		switch r.Status {
		case validator.Valid:
			valid++
		case validator.Empty:
		default:
			sig, _ := r.Resource.Signature()
			t.Errorf("%s: %v %v: %v %v", name, sig.Kind, sig.Name, r.Err, r.ValidationErrors)
		}
	}
	return valid
}

// render runs kustomize on dir, as kubectl kustomize does.
func render(t *testing.T, dir string) []byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestManifestsValid renders the base and each region's overlay with
// kustomize and validates every resource with kubeconform.
func TestManifestsValid(t *testing.T) {
	v := newValidator(t)
	for _, dir := range append([]string{"base"}, overlays()...) {
		out := render(t, dir)
		if n := validate(t, v, dir, out); n != 7 {
			t.Errorf("%s: %d valid resources, want 7 (ServiceAccount, 2 Services, StatefulSet, PDB, NetworkPolicy, ConfigMap)", dir, n)
		}
	}
}

// TestValidatorRefusesMistakes: the validation above can fail: a
// misspelt field, a wrong type and an unknown apiVersion are refused.
func TestValidatorRefusesMistakes(t *testing.T) {
	v := newValidator(t)
	for name, doc := range map[string]string{
		"misspelt field": "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {maxUnavailabel: 1}\n",
		"wrong type":     "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: two, serviceName: s, selector: {}, template: {}}\n",
		"wrong version":  "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {}\n",
	} {
		res := v.Validate(name, io.NopCloser(strings.NewReader(doc)))
		if len(res) != 1 || res[0].Status == validator.Valid {
			t.Errorf("%s: accepted", name)
		}
	}
}

func overlays() []string {
	var out []string
	for _, r := range Regions {
		out = append(out, filepath.Join("overlays", r))
	}
	return out
}

// object is a rendered resource, decoded loosely.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
	Spec struct {
		ClusterIP   string            `json:"clusterIP"`
		ServiceName string            `json:"serviceName"`
		Selector    *labelSelector    `json:"selector"`
		Template    *podTemplate      `json:"template"`
		MaxUnav     any               `json:"maxUnavailable"`
		PodSelector *labelSelector    `json:"podSelector"`
		Claims      []json2           `json:"volumeClaimTemplates"`
		Extra       map[string]string `json:"-"`
	} `json:"spec"`
}

type json2 = map[string]any

type labelSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
	} `json:"httpGet"`
}

type podTemplate struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		SecurityContext struct {
			RunAsNonRoot bool  `json:"runAsNonRoot"`
			FSGroup      int64 `json:"fsGroup"`
		} `json:"securityContext"`
		Containers []struct {
			Env []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"env"`
			Resources struct {
				Requests map[string]string `json:"requests"`
			} `json:"resources"`
			Liveness     *probe `json:"livenessProbe"`
			Readiness    *probe `json:"readinessProbe"`
			VolumeMounts []struct {
				Name      string `json:"name"`
				MountPath string `json:"mountPath"`
				ReadOnly  bool   `json:"readOnly"`
			} `json:"volumeMounts"`
		} `json:"containers"`
		Volumes []struct {
			Name   string `json:"name"`
			Secret *struct {
				SecretName string `json:"secretName"`
			} `json:"secret"`
		} `json:"volumes"`
	} `json:"spec"`
}

func decode(t *testing.T, manifests []byte) map[string]object {
	t.Helper()
	out := map[string]object{}
	for _, doc := range bytes.Split(manifests, []byte("\n---\n")) {
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatal(err)
		}
		out[o.Kind+"/"+o.Metadata.Name] = o
	}
	return out
}

// TestOverlaysDeployAHubCluster checks what the manifests must say, per
// region: a StatefulSet whose serviceName is a headless Service, a PDB
// over its pods, liveness and readiness on /api/health, resource
// requests, secrets mounted read-only as files and read with
// --secrets-dir; and that each pod's environment (the Kubernetes $(VAR)
// references resolved for pods 0 and 1) is a valid hub configuration in
// which exactly one pod of the us region bootstraps and every other pod
// joins it, with node ids unique across regions.
func TestOverlaysDeployAHubCluster(t *testing.T) {
	bootstraps, ids := 0, map[string]bool{}
	for _, region := range Regions {
		objs := decode(t, render(t, filepath.Join("overlays", region)))
		sts, ok := objs["StatefulSet/redforge-hub"]
		if !ok || sts.Spec.Template == nil {
			t.Fatalf("%s: no StatefulSet redforge-hub", region)
		}
		headless := objs["Service/"+sts.Spec.ServiceName]
		if headless.Spec.ClusterIP != "None" {
			t.Errorf("%s: serviceName %q is not a headless Service", region, sts.Spec.ServiceName)
		}
		pdb, ok := objs["PodDisruptionBudget/redforge-hub"]
		if !ok || !subset(pdb.Spec.Selector.MatchLabels, sts.Spec.Template.Metadata.Labels) {
			t.Errorf("%s: no PodDisruptionBudget selecting the hub pods", region)
		}
		pod := sts.Spec.Template.Spec
		if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.FSGroup == 0 {
			t.Errorf("%s: pod security context %+v", region, pod.SecurityContext)
		}
		c := pod.Containers[0]
		for name, p := range map[string]*probe{"liveness": c.Liveness, "readiness": c.Readiness} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/api/health" {
				t.Errorf("%s: %s probe is not GET /api/health", region, name)
			}
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
			t.Errorf("%s: no cpu and memory requests", region)
		}
		env := map[string]string{}
		for k, v := range objs["ConfigMap/"+configMapName(objs)].Data {
			env[k] = v
		}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		secretsDir := env["REDFORGE_SECRETS_DIR"]
		mounted := false
		for _, m := range c.VolumeMounts {
			for _, vol := range pod.Volumes {
				if vol.Name == m.Name && vol.Secret != nil && m.MountPath == secretsDir && m.ReadOnly {
					mounted = true
				}
			}
		}
		if secretsDir == "" || !mounted {
			t.Errorf("%s: secrets are not mounted read-only at REDFORGE_SECRETS_DIR %q", region, secretsDir)
		}
		if env["REDFORGE_REGION"] != region {
			t.Errorf("%s: REDFORGE_REGION %q", region, env["REDFORGE_REGION"])
		}
		for i := range 2 {
			podEnv := resolve(env, map[string]string{"POD_NAME": fmt.Sprintf("redforge-hub-%d", i), "POD_NAMESPACE": sts.Metadata.Namespace})
			podEnv["REDFORGE_CLUSTER_SECRET"] = "k8s-test-cluster-secret-0123" // from the Secret's file
			cfg, err := hub.ParseConfig(nil, func(k string) string {
				if k == "REDFORGE_SECRETS_DIR" {
					return "" // the Secret is not there at render time
				}
				return podEnv[k]
			}, io.Discard)
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				t.Errorf("%s pod %d: not a valid hub configuration: %v", region, i, err)
				continue
			}
			if ids[cfg.NodeID] {
				t.Errorf("%s pod %d: node id %s used twice", region, i, cfg.NodeID)
			}
			ids[cfg.NodeID] = true
			if cfg.Join == cfg.Advertise {
				bootstraps++
				if region != "us" || i != 0 {
					t.Errorf("%s pod %d bootstraps a cluster", region, i)
				}
			}
		}
	}
	if bootstraps != 1 {
		t.Errorf("%d pods bootstrap, want exactly 1 (us pod 0)", bootstraps)
	}
}

func configMapName(objs map[string]object) string {
	for k, o := range objs {
		if o.Kind == "ConfigMap" && strings.HasPrefix(o.Metadata.Name, "redforge-hub") {
			return strings.TrimPrefix(k, "ConfigMap/")
		}
	}
	return ""
}

var varRef = regexp.MustCompile(`\$\(([A-Z_]+)\)`)

// resolve expands $(VAR) references as the kubelet does, from env and
// the pod's own fields.
func resolve(env, fields map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range fields {
		out[k] = v
	}
	for k, v := range env {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	for k, v := range out {
		out[k] = varRef.ReplaceAllStringFunc(v, func(m string) string {
			if r, ok := out[varRef.FindStringSubmatch(m)[1]]; ok {
				return r
			}
			return m
		})
	}
	return out
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
