/**
 * gRPC server reflection (v1 and v1alpha) for a Connect router, answered from
 * protobuf-es descriptors: lets grpcurl and `buf curl` discover and call the
 * Gossip service without a schema. connect-es has none (connect-es #507).
 */
import { create, createRegistry, type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The v1 and v1alpha message shapes are identical; v1 types describe both. */
type Request = v1.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse;
type Base = { validHost: string; originalRequest: Request };

const notFound = 5;
const unimplemented = 12;

/** Every file `file` depends on, itself included, dependencies first, each once. */
function withDependencies(file: DescFile, seen = new Set<string>(), out: DescFile[] = []): DescFile[] {
  if (seen.has(file.name)) return out;
  seen.add(file.name);
  for (const dep of file.dependencies) withDependencies(dep, seen, out);
  out.push(file);
  return out;
}

/**
 * Answers reflection requests about `services` (and the reflection services
 * themselves): list services, file by name, file containing a symbol (message,
 * enum, service, method, field). Extensions are answered with NOT_FOUND (the
 * gossip schema has none).
 */
export class ReflectionResponder {
  private readonly files = new Map<string, DescFile>();
  private readonly serviceNames: string[];
  private readonly registry;

  constructor(services: readonly DescService[]) {
    const all = [...services, v1.ServerReflection, v1alpha.ServerReflection];
    this.serviceNames = all.map((s) => s.typeName);
    for (const s of all) for (const f of withDependencies(s.file)) this.files.set(f.name, f);
    this.registry = createRegistry(...this.files.values());
  }

  /** Answers one request. */
  answer(req: Request): Response {
    const base: Base = { validHost: req.host, originalRequest: req };
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return create(v1.ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "listServicesResponse",
            value: { service: this.serviceNames.map((name) => ({ name })) },
          },
        });
      case "fileByFilename": {
        const file = this.files.get(r.value);
        return file ? this.fileResponse(base, file) : this.error(base, notFound, `file not found: ${r.value}`);
      }
      case "fileContainingSymbol": {
        const file = this.fileOfSymbol(r.value);
        return file ? this.fileResponse(base, file) : this.error(base, notFound, `symbol not found: ${r.value}`);
      }
      case "allExtensionNumbersOfType": {
        if (this.registry.getMessage(r.value) === undefined) {
          return this.error(base, notFound, `type not found: ${r.value}`);
        }
        return create(v1.ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: [] } },
        });
      }
      case "fileContainingExtension":
        return this.error(base, notFound, `extension not found: ${r.value.containingType}(${r.value.extensionNumber})`);
      default:
        return this.error(base, unimplemented, "unsupported reflection request");
    }
  }

  private fileOfSymbol(symbol: string): DescFile | undefined {
    const name = symbol.startsWith(".") ? symbol.slice(1) : symbol;
    const direct = this.registry.get(name);
    if (direct) return direct.file;
    // `pkg.Service.Method` or `pkg.Message.field`: look the parent up.
    const dot = name.lastIndexOf(".");
    if (dot < 0) return undefined;
    const parent = this.registry.get(name.slice(0, dot));
    const member = name.slice(dot + 1);
    if (parent?.kind === "service" && parent.methods.some((m) => m.name === member)) return parent.file;
    if (parent?.kind === "message" && parent.fields.some((f) => f.name === member)) return parent.file;
    return undefined;
  }

  private fileResponse(base: Base, file: DescFile): Response {
    return create(v1.ServerReflectionResponseSchema, {
      ...base,
      messageResponse: {
        case: "fileDescriptorResponse",
        value: {
          fileDescriptorProto: withDependencies(file)
            .reverse()
            .map((f) => toBinary(FileDescriptorProtoSchema, f.proto)),
        },
      },
    });
  }

  private error(base: Base, errorCode: number, errorMessage: string): Response {
    return create(v1.ServerReflectionResponseSchema, {
      ...base,
      messageResponse: { case: "errorResponse", value: { errorCode, errorMessage } },
    });
  }
}

/**
 * Registers `grpc.reflection.v1.ServerReflection` and
 * `grpc.reflection.v1alpha.ServerReflection` on `router`, describing `services`.
 */
export function registerReflection(router: ConnectRouter, services: readonly DescService[]): void {
  const responder = new ReflectionResponder(services);
  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield responder.answer(req);
    },
  });
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        // Same wire shape: answer with v1 logic, re-typed as v1alpha.
        const answer = responder.answer({ ...req, $typeName: "grpc.reflection.v1.ServerReflectionRequest" } as Request);
        yield toAlpha(answer, req);
      }
    },
  });
}

function toAlpha(answer: Response, original: v1alpha.ServerReflectionRequest): v1alpha.ServerReflectionResponse {
  const m = answer.messageResponse;
  let messageResponse: v1alpha.ServerReflectionResponse["messageResponse"];
  switch (m.case) {
    case "fileDescriptorResponse":
      messageResponse = {
        case: m.case,
        value: create(v1alpha.FileDescriptorResponseSchema, { fileDescriptorProto: m.value.fileDescriptorProto }),
      };
      break;
    case "allExtensionNumbersResponse":
      messageResponse = {
        case: m.case,
        value: create(v1alpha.ExtensionNumberResponseSchema, {
          baseTypeName: m.value.baseTypeName,
          extensionNumber: m.value.extensionNumber,
        }),
      };
      break;
    case "listServicesResponse":
      messageResponse = {
        case: m.case,
        value: create(v1alpha.ListServiceResponseSchema, { service: m.value.service.map((s) => ({ name: s.name })) }),
      };
      break;
    case "errorResponse":
      messageResponse = {
        case: m.case,
        value: create(v1alpha.ErrorResponseSchema, { errorCode: m.value.errorCode, errorMessage: m.value.errorMessage }),
      };
      break;
    default:
      messageResponse = { case: undefined };
  }
  return create(v1alpha.ServerReflectionResponseSchema, { validHost: answer.validHost, originalRequest: original, messageResponse });
}
