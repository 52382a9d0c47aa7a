package rm_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/yarn/rm"
)

// TestRealResourceManager runs against a real RM when TIDEWATCH_RM is set
// (comma-separated web addresses, e.g. http://rm1:8088,http://rm2:8088).
// TIDEWATCH_RM_USER sets user.name (default: $USER). It only reads, and asks
// for an application id, which the RM simply skips if it is never submitted.
func TestRealResourceManager(t *testing.T) {
	addr := os.Getenv("TIDEWATCH_RM")
	if addr == "" {
		t.Skip("TIDEWATCH_RM not set; skipping the real ResourceManager test")
	}
	user := os.Getenv("TIDEWATCH_RM_USER")
	if user == "" {
		user = os.Getenv("USER")
	}
	if user == "" {
		user = "tidewatch"
	}
	o := rm.DefaultOptions()
	o.BaseURLs = splitComma(addr)
	o.User = user
	o.RequestTimeout = 20 * time.Second
	c, err := rm.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	info, err := c.ClusterInfo(ctx)
	if err != nil {
		t.Fatalf("cluster info from %s: %v", addr, err)
	}
	t.Logf("cluster %d: state %s, haState %s, Hadoop %s (answered by %s)", info.ID, info.State, info.HAState, info.HadoopVersion, c.ActiveURL())
	if info.State != "STARTED" {
		t.Errorf("cluster answered state %q, want STARTED", info.State)
	}
	na, err := c.NewApplication(ctx)
	if err != nil {
		t.Fatalf("new-application as %s: %v", user, err)
	}
	id, err := rm.ParseApplicationID(na.ApplicationID)
	if err != nil {
		t.Fatalf("cluster answered application id %q: %v", na.ApplicationID, err)
	}
	if id.ClusterTimestamp != info.ID {
		t.Errorf("application id %s does not carry the cluster id %d", na.ApplicationID, info.ID)
	}
	t.Logf("new application %s, max capability %+v", na.ApplicationID, na.MaximumResourceCapability)
	apps, err := c.Applications(ctx, rm.ListFilter{ApplicationTypes: []string{rm.ApplicationTypeTidewatch}})
	if err != nil {
		t.Fatalf("list by type: %v", err)
	}
	for _, a := range apps {
		if a.ApplicationType != rm.ApplicationTypeTidewatch {
			t.Errorf("list by type %s returned %s of type %q", rm.ApplicationTypeTidewatch, a.ID, a.ApplicationType)
		}
	}
	t.Logf("%d %s applications", len(apps), rm.ApplicationTypeTidewatch)
	if _, err := c.Scheduler(ctx); err != nil {
		t.Errorf("scheduler: %v", err)
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
