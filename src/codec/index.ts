/**
 * `gossip-connect/codec`: a compiled protobuf binary codec for protobuf-es
 * messages, for every layer's hot path. Byte-identical to protobuf-es'
 * `toBinary`, decodes to what `fromBinary` returns, and hands anything it
 * does not compile (types or inputs) to protobuf-es. Knows nothing of gossip.
 *
 * @packageDocumentation
 */

export { decodeMessage } from "./decoder.js";
export { emptyBytes } from "./empty-bytes.js";
export { compileEncoder, encodeMessage, type Measured, type MessageEncoder, mayHaveUnknownFields } from "./encoder.js";
export {
  anyVarintSize,
  bigVarintSize,
  delimitedSize,
  varintSize,
  writeAnyVarint,
  writeBigVarint,
  writeDelimited,
  writeVarint,
} from "./varint.js";
