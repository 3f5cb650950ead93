/**
 * `gossip-connect/metrics`: Prometheus metrics of a comm (prom-client).
 *
 * @packageDocumentation
 */
export { PrometheusMetrics } from "./prometheus.js";
