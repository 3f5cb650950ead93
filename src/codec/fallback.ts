/**
 * The codec's one escape hatch: thrown inside the compiled encoder and
 * decoder when protobuf-es must handle the whole message instead (a type or
 * an input the compiled plan does not cover). Never leaves this module.
 */
export class Fallback extends Error {}

/** The single instance thrown (no stack trace captured per fallback). */
export const fallback: Fallback = new Fallback("fallback to protobuf-es");
