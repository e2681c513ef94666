// Command dashboards writes RedForge's Grafana dashboards
// (packaging/grafana) as JSON: make dashboards.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/redforge/controltower/packaging/grafana"
)

func main() {
	dir := flag.String("out", "grafana", "directory to write dashboards/*.json into")
	flag.Parse()
	for _, s := range grafana.Specs() {
		b, err := grafana.JSON(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dashboards:", err)
			os.Exit(1)
		}
		path := filepath.Join(*dir, grafana.FileName(s))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "dashboards:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "dashboards:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", path)
	}
}
