package notify

import "time"

// limiter allows at most count messages in any window of length per: it
// remembers the times of the last count messages it allowed, and the next
// message may go when the oldest of them is per old. Reservations are made
// ahead, so a backlog is spread out at the limit's pace and every waiting
// row is postponed once.
type limiter struct {
	count int
	per   time.Duration
	times []time.Time // ring of the last count reservations, oldest at head
	head  int
}

func newLimiter(count int, per time.Duration) *limiter {
	return &limiter{count: count, per: per}
}

// reserve takes the next slot and returns when it is; at or before now
// means at once.
func (l *limiter) reserve(now time.Time) time.Time {
	if len(l.times) < l.count {
		at := now
		if n := len(l.times); n > 0 && l.times[n-1].After(at) {
			at = l.times[n-1] // keep the ring in order
		}
		l.times = append(l.times, at)
		return at
	}
	at := l.times[l.head].Add(l.per)
	if at.Before(now) {
		at = now
	}
	l.times[l.head] = at
	l.head = (l.head + 1) % l.count
	return at
}
