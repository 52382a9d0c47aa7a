//go:build !unix

package mlforecast

import "time"

func processCPU() time.Duration { return 0 }
