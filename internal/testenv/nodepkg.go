package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"testing"
)

// NodePackage is a Node-RED node package made up for a test: one node
// type, Type, whose input handler sets msg.payload to Reply (and, with
// Require, first requires that module, which a test may leave missing).
type NodePackage struct {
	Name, Version, Type, Reply string
	Require                    string
	// Dependencies go into package.json as they are (not bundled).
	Dependencies map[string]string
}

// Tarball returns the package as npm pack would make it: a gzipped tar of
// package/package.json, package/{type}.js and package/{type}.html.
func (p NodePackage) Tarball(tb testing.TB) []byte {
	tb.Helper()
	pkg := map[string]any{
		"name": p.Name, "version": p.Version, "license": "MIT",
		"keywords": []string{"node-red"},
		"node-red": map[string]any{"version": ">=3.0.0", "nodes": map[string]string{p.Type: p.Type + ".js"}},
	}
	if len(p.Dependencies) > 0 {
		pkg["dependencies"] = p.Dependencies
	}
	manifest, err := json.Marshal(pkg)
	if err != nil {
		tb.Fatal(err)
	}
	reply, _ := json.Marshal(p.Reply)
	typ, _ := json.Marshal(p.Type)
	req := ""
	if p.Require != "" {
		r, _ := json.Marshal(p.Require)
		req = "require(" + string(r) + ");\n"
	}
	js := "module.exports = function (RED) {\n" + req +
		"  function N(config) {\n    RED.nodes.createNode(this, config);\n    const node = this;\n" +
		"    node.on(\"input\", function (msg, send, done) { msg.payload = " + string(reply) + "; send(msg); done(); });\n  }\n" +
		"  RED.nodes.registerType(" + string(typ) + ", N);\n};\n"
	html := `<script type="text/javascript">RED.nodes.registerType(` + string(typ) + `,{category:"function",color:"#a6bbcf",defaults:{name:{value:""}},inputs:1,outputs:1,label:function(){return this.name||` + string(typ) + `;}});</script>
<script type="text/html" data-template-name=` + string(typ) + `><div class="form-row"><label for="node-input-name">Name</label><input type="text" id="node-input-name"></div></script>
`
	return p.TarballWith(tb, map[string][]byte{"package/package.json": manifest, "package/" + p.Type + ".js": []byte(js), "package/" + p.Type + ".html": []byte(html)})
}

// TarballWith returns a gzipped tar of files (path → content).
func (NodePackage) TarballWith(tb testing.TB, files map[string][]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
