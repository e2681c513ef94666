package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
)

// clusterSecretHeader carries REDFORGE_CLUSTER_SECRET on hub-to-hub calls
// (hub/cluster.SecretHeader); towerctl cluster join makes one.
const clusterSecretHeader = "X-Redforge-Cluster-Secret"

type clusterStatus struct {
	NodeID      string `json:"node_id"`
	Region      string `json:"region"`
	State       string `json:"state"`
	LeaderID    string `json:"leader_id"`
	StalenessMS int64  `json:"staleness_ms"`
	Term        string `json:"term"`
	Servers     []struct {
		ID     string  `json:"id"`
		Addr   string  `json:"raft_addr"`
		Region string  `json:"region"`
		API    string  `json:"api"`
		Voter  bool    `json:"voter"`
		Leader bool    `json:"leader"`
		State  string  `json:"state"`
		RTTMS  float64 `json:"rtt_ms"`
	} `json:"servers"`
}

// runCluster is towerctl cluster status|leave ID|join --id … .
func runCluster(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: towerctl cluster status | leave HUB_ID | join --id ID --region R --raft HOST:PORT --api URL | ca init|issue")
	}
	switch args[0] {
	case "ca":
		return runClusterCA(ctx, args[1:], out)
	case "status":
		return clusterStatusCmd(ctx, cl, out)
	case "leave":
		if len(args) != 2 {
			return errors.New("usage: towerctl cluster leave HUB_ID (see towerctl cluster status)")
		}
		if _, err := cl.api(ctx, http.MethodDelete, "/api/cluster/servers/"+url.PathEscape(args[1]), nil, nil); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "hub %s removed from the cluster; stop its process (it is not told)\n", args[1])
		return err
	case "join":
		return clusterJoinCmd(ctx, cl, args[1:], out)
	}
	return fmt.Errorf("unknown subcommand %q: want status, leave, join or ca", args[0])
}

func clusterStatusCmd(ctx context.Context, cl *Client, out io.Writer) error {
	var st clusterStatus
	if _, err := cl.api(ctx, http.MethodGet, "/api/cluster", nil, &st); err != nil {
		return err
	}
	fmt.Fprintf(out, "asked %s (region %s, %s, term %s, stale %d ms); leader %s\n", st.NodeID, st.Region, st.State, st.Term, st.StalenessMS, st.LeaderID)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tREGION\tROLE\tLEADER\tPROBE\tRTT\tRAFT\tAPI")
	for _, s := range st.Servers {
		role := "nonvoter"
		if s.Voter {
			role = "voter"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%.1fms\t%s\t%s\n", s.ID, s.Region, role, s.Leader, s.State, s.RTTMS, s.Addr, s.API)
	}
	return tw.Flush()
}

// clusterJoinCmd asks the hub at --hub (any member) to add a hub that is
// running without --join and waiting to be added. It authenticates with
// REDFORGE_CLUSTER_SECRET, like a hub started with --join.
func clusterJoinCmd(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("cluster join")
	var h struct {
		ID     string `json:"id"`
		Region string `json:"region"`
		API    string `json:"api"`
		Raft   string `json:"raft"`
	}
	fs.StringVar(&h.ID, "id", "", "the new hub's node id (--node-id)")
	fs.StringVar(&h.Region, "region", "", "the new hub's region")
	fs.StringVar(&h.Raft, "raft", "", "the new hub's Raft address (host:port)")
	fs.StringVar(&h.API, "api", "", "the new hub's API URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"--id": h.ID, "--region": h.Region, "--raft": h.Raft, "--api": h.API} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	secret := cl.getenv("REDFORGE_CLUSTER_SECRET")
	if secret == "" {
		return errors.New("set REDFORGE_CLUSTER_SECRET to the cluster's secret")
	}
	body, _ := json.Marshal(h)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.base.String()+"/api/cluster/join", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(clusterSecretHeader, secret)
	resp, err := cl.http.Do(req)
	if err != nil {
		return fmt.Errorf("hub %s unreachable: %w", cl.base.Host, err)
	}
	defer resp.Body.Close()
	var res struct {
		Voter   bool   `json:"voter"`
		ErrKind string `json:"err_kind"`
		ErrMsg  string `json:"err_msg"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("join refused (HTTP %d): %.300s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("decode join answer: %w", err)
	}
	if res.ErrKind != "" {
		return fmt.Errorf("join failed (%s): %s", res.ErrKind, res.ErrMsg)
	}
	role := "nonvoter"
	if res.Voter {
		role = "voter"
	}
	_, err = fmt.Fprintf(out, "hub %s joined as a %s\n", h.ID, role)
	return err
}
