//go:build race

package mlforecast

// raceEnabled trims the data-set sweeps under the race detector, which
// slows this numeric code roughly tenfold.
const raceEnabled = true
