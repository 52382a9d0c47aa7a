package rm

import (
	"fmt"
	"strconv"
	"strings"
)

// ApplicationID is the parsed form of application_<clusterTimestamp>_<seq>
// (HADOOP_PROTOCOLS.md §2.3).
type ApplicationID struct {
	ClusterTimestamp int64
	Seq              int32
}

// String formats the id with the sequence zero-padded to at least 4 digits.
func (id ApplicationID) String() string {
	return fmt.Sprintf("application_%d_%04d", id.ClusterTimestamp, id.Seq)
}

// ParseApplicationID parses application_<clusterTimestamp>_<seq>.
func ParseApplicationID(s string) (ApplicationID, error) {
	rest, ok := strings.CutPrefix(s, "application_")
	if !ok {
		return ApplicationID{}, fmt.Errorf("%w: %q lacks the application_ prefix", ErrInvalidID, s)
	}
	ts, seq, ok := strings.Cut(rest, "_")
	if !ok || strings.Contains(seq, "_") {
		return ApplicationID{}, fmt.Errorf("%w: %q is not application_<clusterTimestamp>_<seq>", ErrInvalidID, s)
	}
	t, err := parseDigits(ts, 63)
	if err != nil {
		return ApplicationID{}, fmt.Errorf("%w: cluster timestamp of %q: %v", ErrInvalidID, s, err)
	}
	n, err := parseDigits(seq, 31)
	if err != nil {
		return ApplicationID{}, fmt.Errorf("%w: sequence of %q: %v", ErrInvalidID, s, err)
	}
	return ApplicationID{ClusterTimestamp: t, Seq: int32(n)}, nil
}

// AttemptID returns appattempt_<clusterTimestamp>_<seq4>_<attempt6>.
func (id ApplicationID) AttemptID(attempt int) string {
	return fmt.Sprintf("appattempt_%d_%04d_%06d", id.ClusterTimestamp, id.Seq, attempt)
}

// ContainerID returns container_<clusterTimestamp>_<seq4>_<attempt2>_<n6>
// (epoch 0, so no e<epoch>_ part).
func (id ApplicationID) ContainerID(attempt int, n int64) string {
	return fmt.Sprintf("container_%d_%04d_%02d_%06d", id.ClusterTimestamp, id.Seq, attempt, n)
}

func parseDigits(s string, bits int) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not decimal digits", s)
		}
	}
	return strconv.ParseInt(s, 10, bits+1)
}
