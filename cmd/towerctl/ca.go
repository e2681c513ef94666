package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/pki"
)

// caUsage is the usage of towerctl cluster ca.
const caUsage = "usage: towerctl cluster ca init [--dir DIR] [--name NAME] | issue [--dir DIR] --name HUB --host NAME_OR_IP[,…] [--out DIR] [--days N]"

// runClusterCA is towerctl cluster ca init|issue: the cluster CA that
// hub-to-hub mutual TLS and the edges' pinned HTTPS trust. It works on
// files only and calls no hub.
func runClusterCA(_ context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(caUsage)
	}
	fs := newFlags("cluster ca " + args[0])
	dir := fs.String("dir", "cluster-ca", "directory of the CA (ca.crt, ca.key)")
	name := fs.String("name", "", "init: the CA's name; issue: the hub's name (the certificate's common name and file names)")
	hosts := fs.String("host", "", "issue: comma-separated DNS names and IP addresses the hub is reached at (its --advertise host, Raft address, …)")
	outDir := fs.String("out", "", "issue: directory for NAME.crt and NAME.key (default: --dir)")
	days := fs.Int("days", int(pki.DefaultCertValidity/(24*time.Hour)), "issue: validity in days")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w (%s)", err, caUsage)
	}
	switch args[0] {
	case "init":
		ca, err := pki.InitCA(*dir, *name)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "cluster CA written to %s (%s, and %s: keep it offline, mode 0600)\nCA pin: %s\n",
			*dir, pki.CACertFile, pki.CAKeyFile, ca.Pin())
		return err
	case "issue":
		if *name == "" || *hosts == "" {
			return fmt.Errorf("issue needs --name and --host (%s)", caUsage)
		}
		if *days < 1 {
			return errors.New("--days must be at least 1")
		}
		ca, err := pki.LoadCA(*dir)
		if err != nil {
			return fmt.Errorf("%w (make one with towerctl cluster ca init --dir %s)", err, *dir)
		}
		if *outDir == "" {
			*outDir = *dir
		}
		certPath, keyPath := filepath.Join(*outDir, *name+".crt"), filepath.Join(*outDir, *name+".key")
		leaf, err := ca.IssueFiles(*name, strings.Split(*hosts, ","), time.Duration(*days)*24*time.Hour, certPath, keyPath)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "issued %s for %s, valid until %s\n  certificate: %s\n  key:         %s (mode 0600)\nstart the hub with --cluster-ca %s --cluster-cert %s --cluster-key %s\n",
			*name, strings.Join(append(leaf.Cert.DNSNames, ipStrings(leaf.Cert)...), ", "), leaf.Cert.NotAfter.Format(time.DateOnly),
			certPath, keyPath, filepath.Join(*dir, pki.CACertFile), certPath, keyPath)
		return err
	}
	return fmt.Errorf("unknown subcommand %q (%s)", args[0], caUsage)
}

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// tlsClientConfig trusts the CA of caFile (REDFORGE_HUB_CA, --ca) for an
// https:// hub with a private CA; nil without one (system roots).
func tlsClientConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	cas, err := pki.ReadCerts(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
