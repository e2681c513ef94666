package metrics

// Dashboard names one of the Grafana dashboards in packaging/grafana
// (made by cmd/dashboards); the console embeds them by UID.
type Dashboard struct {
	UID   string `json:"uid"`
	Title string `json:"title"`
	Key   string `json:"key"` // fleet, deployment, performance, cost
}

// Dashboards are the four dashboards of the roadmap, in the console's
// selector order.
var Dashboards = []Dashboard{
	{UID: "redforge-fleet", Title: "RedForge Fleet Overview", Key: "fleet"},
	{UID: "redforge-deployment", Title: "RedForge Deployments", Key: "deployment"},
	{UID: "redforge-performance", Title: "RedForge Performance", Key: "performance"},
	{UID: "redforge-cost", Title: "RedForge Cost", Key: "cost"},
}
