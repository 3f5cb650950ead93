/**
 * `gossip-connect/metrics`: Prometheus metrics of a comm and of a membership (prom-client).
 *
 * @packageDocumentation
 */
export { PrometheusMetrics } from "./prometheus.js";
export { PrometheusMembershipMetrics } from "./membership-prometheus.js";
