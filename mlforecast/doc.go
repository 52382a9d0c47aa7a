// Package mlforecast fits ARIMA and seasonal ARIMA models to job metrics,
// forecasts them, detects anomalies and advises on capacity.
//
// It has no code in this build.
package mlforecast
