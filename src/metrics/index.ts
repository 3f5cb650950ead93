/**
 * `gossip-connect/metrics`: Prometheus metrics of a comm and of a membership (prom-client).
 *
 * @packageDocumentation
 */

export { PrometheusMembershipMetrics } from "./membership-prometheus.js";
export { PrometheusMetrics } from "./prometheus.js";
