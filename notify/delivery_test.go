package notify

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// TestDelivery1000AlertsThroughRestarts is the outbox's promise under load:
// 1,000 alerts go to a webhook that fails every other request, while the
// notifier (with its database) is stopped and started twice in the middle of
// delivering. Every alert reaches the receiver, and deduplicating by
// idempotency key the receiver sees exactly 1,000 notifications, one per
// alert: none lost, none doubled (a key may arrive more than once, which is
// what the key is for).
func TestDelivery1000AlertsThroughRestarts(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { testDelivery1000(t, b) })
	}
}

func testDelivery1000(t *testing.T, b backend) {
	const total = 1000
	ctx := context.Background()
	srv := newHookServer(t, "s1gning-k3y")
	// Half of all requests fail; each takes a moment, so that stops find
	// deliveries in flight.
	srv.fail = func(n int64) bool { time.Sleep(time.Millisecond); return n%2 == 0 }
	cfg := hookConfig(srv.URL + "/hook")
	cfg.Route.GroupBy = []string{"..."} // one alert per notification
	cfg.Outbox = Outbox{Workers: 8, SendTimeout: 5 * time.Second, MinBackoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}

	distinct := func() int {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.keys)
	}
	// Alerts come in batches, as a monitor's evaluation cycle raises them.
	raise := func(n *Notifier, from, to int) {
		for i := from; i < to; i += 50 {
			var batch []alert.Alert
			for k := i; k < min(i+50, to); k++ {
				batch = append(batch, alert.New("job-"+strconv.Itoa(k%7), "TASK_MANAGER_OPERATOR_LATENCY_HIGH", alert.LevelWarn,
					alert.Labels{"id": strconv.Itoa(k)}))
			}
			if err := n.Raise(ctx, batch...); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	var interrupted int64
	phases := []struct {
		from, to  int
		stopAfter int // distinct keys delivered before the stop
	}{{0, 400, 150}, {400, 800, 550}, {800, total, total}}
	for i, ph := range phases {
		db := b.open(t)
		n := startNotifier(t, db, cfg, Options{Log: testLog(nil)})
		if i == 1 {
			raise(n, 0, 100) // raised again after a restart: nothing new to tell
		}
		raise(n, ph.from, ph.to)
		waitFor(t, 30*time.Second, fmt.Sprintf("%d distinct deliveries", ph.stopAfter), func() bool { return distinct() >= ph.stopAfter })
		if i == len(phases)-1 {
			waitFor(t, 30*time.Second, "an empty outbox", func() bool {
				var pending int64
				db.Model(&DeliveryRecord{}).Where("status <> ?", DeliveryDelivered).Count(&pending)
				return pending == 0
			})
		}
		stopNotifier(t, n)
		if i == len(phases)-1 {
			var notes, deliveries, sending int64
			db.Model(&NotificationRecord{}).Count(&notes)
			db.Model(&DeliveryRecord{}).Where("status = ?", DeliveryDelivered).Count(&deliveries)
			db.Model(&AttemptRecord{}).Where("outcome = ?", OutcomeSending).Count(&sending)
			db.Model(&AttemptRecord{}).Where("outcome = ?", OutcomeInterrupted).Count(&interrupted)
			if notes != total || deliveries != total || sending != 0 {
				t.Errorf("store: %d notifications, %d delivered rows, %d attempts left sending", notes, deliveries, sending)
			}
		}
		closeDB(t, db)
	}

	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.keys) != total {
		t.Fatalf("%d distinct idempotency keys delivered, want %d", len(srv.keys), total)
	}
	seen := map[string]int{}
	for _, body := range srv.bodies {
		for _, a := range body.Alerts {
			seen[a.Labels["id"]]++
		}
	}
	for i := range total {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Errorf("alert %d is in %d distinct notifications, want 1", i, c)
		}
	}
	again := 0
	for _, c := range srv.keys {
		if c < 1 {
			t.Fatal("a key recorded without a delivery")
		}
		if c > 1 {
			again++
		}
	}
	t.Logf("%s: %d requests (%d failed on purpose) for %d notifications; %d attempts interrupted by the stops; %d keys arrived more than once; %s",
		b.name, srv.requests.Load(), srv.requests.Load()/2, total, interrupted, again, time.Since(start).Round(time.Millisecond))
}
