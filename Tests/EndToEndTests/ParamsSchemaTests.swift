import Foundation
import IommufdContract
import IommufdCore
import IommufdRPC
import Testing

@testable import IommufdDaemon

/// `rpc.discover`'s params schemas against the decoders that parse the params. The keys each
/// decoder accepts are derived without the schema recorder: a sample of every params type with
/// every field set (checked with `Mirror`) is encoded with the types' own `CodingKeys`, and the
/// real `JSONValueDecoder` says which keys are required and which strings are constrained.
@Suite("Params schemas: every field of every params type, enums as enums")
struct ParamsSchemaTests {
    /// One value of each method's params type, every optional set (an `Optional.none` anywhere
    /// fails the test, so a field added to a type must be added here too).
    static let samples: [String: any Codable & Sendable] = [
        "owner.create": OwnerCreateParams(name: "vm1", tolerateMissing: true, dirty: .required, hugePages: false),
        "owner.list": NoParams(),
        "owner.info": OwnerInfoParams(name: "vm1"),
        "owner.release": OwnerReleaseParams(name: "vm1"),
        "owner.delegate": OwnerDelegateParams(name: "vm1"),
        "owner.revoke_channels": OwnerRevokeChannelsParams(name: "vm1"),
        "device.list": DeviceListParams(owner: "vm1"),
        "device.info": DeviceInfoParams(device: "sim-pci0"),
        "device.attach": DeviceAttachParams(owner: "vm1", device: "sim-pci0", ioas: 1, hwpt: 2, dirty: .off),
        "device.detach": DeviceDetachParams(device: "sim-pci0"),
        "device.replace": DeviceReplaceParams(device: "sim-pci0", ioas: 1, hwpt: 2, dirty: .preferred),
        "device.release": DeviceReleaseParams(device: "sim-pci0"),
        "device.fd": DeviceFDParams(device: "sim-pci0"),
        "ioas.create": IOASCreateParams(owner: "vm1", hugePages: true),
        "ioas.destroy": IOASDestroyParams(ioas: 1),
        "ioas.list": IOASListParams(owner: "vm1"),
        "ioas.info": IOASInfoParams(ioas: 1, maxMappings: 10),
        "ioas.map": IOASMapParams(ioas: 1, fd: FDRef(fd: 0), offset: 0, length: 4096, iova: 0, readable: true, writeable: false),
        "ioas.unmap": IOASUnmapParams(ioas: 1, iova: 0, length: 4096, all: false, tolerateMissing: true),
        "ioas.copy": IOASCopyParams(dstIOAS: 2, srcIOAS: 1, srcIOVA: 0, length: 4096, dstIOVA: 0, readable: true, writeable: true),
        "ioas.ranges": IOASRangesParams(ioas: 1),
        "ioas.set_option": IOASSetOptionParams(ioas: 1, hugePages: false),
        "hwpt.list": HWPTListParams(owner: "vm1", ioas: 1),
        "hwpt.alloc": {
            var p = HWPTAllocParams(ioas: 1, device: "sim-pci0", dirtyTracking: true, nestParent: false, faultQueue: 7)
            p.parent = 2
            p.viommu = 3
            p.data = NestedDataParams(type: "selftest", iotlb: 1, flags: 0, pgtblAddr: 0x1000, addrWidth: 48, ste: [1, 2], dte: [1, 2, 3, 4])
            p.pasid = true
            return p
        }(),
        "hwpt.destroy": HWPTDestroyParams(hwpt: 2),
        "dirty.start": DirtyParams(ioas: 1),
        "dirty.stop": DirtyParams(ioas: 1),
        "dirty.status": DirtyParams(ioas: 1),
        "dirty.read": DirtyReadParams(ioas: 1, iova: 0, length: 4096, pageSize: 4096, clear: false, format: .bitmap, maxRuns: 16, into: FDRef(fd: 0)),
        "viommu.create": VIOMMUCreateParams(device: "sim-pci0", type: 1),
        // queues
        "fault.create": FaultCreateParams(owner: "vm1"),
        "fault.destroy": QueueParams(queue: 7),
        "veventq.create": VEventQCreateParams(viommu: 5, type: 1, depth: 64),
        "veventq.destroy": QueueParams(queue: 8),
        "queue.list": QueueListParams(owner: "vm1", viommu: 5),
        "queue.fd": QueueParams(queue: 7),
        "viommu.destroy": VIOMMUDestroyParams(viommu: 3),
        "viommu.list": VIOMMUListParams(owner: "vm1", ioas: 1),
        "vdevice.create": VDeviceCreateParams(viommu: 3, device: "sim-pci0", virtualID: 7),
        "vdevice.destroy": VDeviceDestroyParams(vdevice: 4),
        "hwpt.invalidate": HWPTInvalidateParams(hwpt: 5, entries: [InvalidationEntryParams(iotlbID: 1, all: false, vdevID: 7, cacheID: 0, addr: 0, npages: 1, leaf: true, cmd: [1, 2])]),
        // pasid
        "device.attach_pasid": DevicePASIDParams(device: "sim-pci0", pasid: 100, hwpt: 2),
        "device.replace_pasid": DevicePASIDParams(device: "sim-pci0", pasid: 100, hwpt: 3),
        "device.detach_pasid": DevicePASIDDetachParams(device: "sim-pci0", pasid: 100),
        "viommu.invalidate": VIOMMUInvalidateParams(viommu: 3, entries: [InvalidationEntryParams(iotlbID: 1, all: true, vdevID: 7, cacheID: 0, addr: 0, npages: 1, leaf: false, cmd: [1, 2])]),
        "daemon.ping": NoParams(),
        "daemon.info": NoParams(),
        "daemon.metrics": NoParams(),
        "rpc.discover": NoParams(),
        "events.subscribe": EventsSubscribeParams(owner: "vm1"),
        "events.unsubscribe": EventsUnsubscribeParams(subscription: 1),
        "sim.dma": SimDMAParams(device: "sim-pci0", iova: 0, length: 4096, pageSize: 4096),
        "test.stall_main_queue": StallMainQueueParams(seconds: 1),
        "test.sim_inventory": SimInventoryParams(),
        "test.dmabuf_get": TestDmabufGetParams(length: 4096),  // p2p
        "test.dmabuf_revoke": TestDmabufRevokeParams(revoked: true),
        // hwqueue3
        "hwqueue.alloc": HWQueueAllocParams(viommu: 3, type: .name("selftest"), index: 0, baseAddress: 0x10_0000, length: 4096, flags: 0),
        "hwqueue.destroy": HWQueueParams(hwQueue: 9),
        "test.trigger_vevent": TestTriggerVEventParams(device: "sim-pci3"),  // i14audit
        "test.trigger_iopf": TestTriggerIOPFParams(device: "sim-pci3", address: 0x1000, pasid: 0, group: 1, perm: 1),
    ]

    /// Every method the daemon serves (test hooks on, so `sim.dma` and `test.stall_main_queue` too),
    /// by `rpc.discover`.
    static func discoveredMethods() throws -> [(name: String, params: [JSONValue])] {
        let daemon = try DaemonProcess()
        let document = try daemon.client().call("rpc.discover")
        #expect(daemon.stop() == 0, "\(daemon.log)")
        return try #require(document["methods"]?.arrayValue).map {
            (try #require($0["name"]?.stringValue), $0["params"]?.arrayValue ?? [])
        }
    }

    @Test func everyMethodHasASample() throws {
        let names = Set(try Self.discoveredMethods().map(\.name))
        #expect(names == Set(Self.samples.keys), "methods without a sample: \(names.subtracting(Self.samples.keys).sorted()); samples of no method: \(Set(Self.samples.keys).subtracting(names).sorted())")
        for (method, sample) in Self.samples {
            let unset = Self.unsetFields(sample)
            #expect(unset.isEmpty, "\(method): the sample leaves \(unset) nil; set every field so its key is compared")
        }
    }

    @Test func schemaPropertiesAreTheKeysTheDecoderAccepts() throws {
        for method in try Self.discoveredMethods() {
            guard let sample = Self.samples[method.name] else { continue }  // everyMethodHasASample says so
            let encoded = try JSONValueEncoder().encode(sample)
            let keys = encoded.objectValue ?? [:]
            var schema: [String: JSONValue] = [:]
            var required: Set<String> = []
            for p in method.params {
                let name = try #require(p["name"]?.stringValue)
                schema[name] = p["schema"] ?? [:]
                if p["required"] == true { required.insert(name) }
            }
            #expect(Set(schema.keys) == Set(keys.keys), "\(method.name): rpc.discover has \(schema.keys.sorted()), the decoder takes \(keys.keys.sorted())")
            for (key, value) in keys {
                guard let property = schema[key] else { continue }
                Self.compare(property, value, "\(method.name) params.\(key)")
                // Required exactly when the decoder refuses the params without it.
                var without = keys
                without[key] = nil
                let decodesWithout = Self.decodes(like: sample, .object(without))
                #expect(required.contains(key) == !decodesWithout, "\(method.name) params.\(key): required in rpc.discover is \(required.contains(key)), the decoder \(decodesWithout ? "accepts" : "refuses") params without it")
                // A string the decoder constrains to some values is an enum in the schema, with
                // exactly the values it accepts.
                if case .string(let sampleValue) = value {
                    var other = keys
                    other[key] = "\u{1}not-a-value"
                    let free = Self.decodes(like: sample, .object(other))
                    let values = property["enum"]?.arrayValue?.compactMap(\.stringValue)
                    if free {
                        #expect(values == nil, "\(method.name) params.\(key): any string decodes, yet rpc.discover lists \(values ?? [])")
                    } else {
                        let values = try #require(values, "\(method.name) params.\(key): the decoder accepts only some strings, but rpc.discover shows a bare string")
                        #expect(values.contains(sampleValue), "\(method.name) params.\(key): \"\(sampleValue)\" decodes but is not in \(values)")
                        for v in values {
                            var with = keys
                            with[key] = .string(v)
                            let accepted = Self.decodes(like: sample, .object(with))
                            #expect(accepted, "\(method.name) params.\(key): rpc.discover lists \"\(v)\", the decoder refuses it")
                        }
                    }
                }
            }
        }
    }

    /// The daemon's own schema of `dirty.read`, the method whose fields the recorder used to
    /// drop after `format`.
    @Test func dirtyReadHasEveryParamAndFormatIsAnEnum() throws {
        let schema = try ParamsSchema.of(DirtyReadParams.self)
        let props = try #require(schema["properties"]?.objectValue)
        #expect(Set(props.keys) == ["ioas", "iova", "length", "page_size", "clear", "format", "max_runs", "into"])
        #expect(props["format"]?["enum"] == ["runs", "bitmap", "packed_runs"])
        #expect(props["page_size"]?["type"] == "integer" && props["max_runs"]?["type"] == "integer")
    }

    // MARK: The recorder fails loudly

    enum Mode: String, Codable { case fast, slow }  // raw values, not CaseIterable
    struct EnumNotCaseIterable: Codable {
        var ioas: UInt32
        var mode: Mode?
        var after: Bool?
    }

    struct Validating: Codable {
        var name: String
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            guard !name.isEmpty else { throw DecodingError.dataCorruptedError(forKey: .name, in: c, debugDescription: "empty name") }
        }
    }
    struct ContainsValidating: Codable {
        var owner: Validating
    }

    enum Level: UInt8, Codable, CaseIterable { case low = 1, high = 2 }
    struct WithIntegerEnum: Codable {
        var level: Level
    }

    @Test func anEnumThatCannotBeListedIsAnErrorNamingTheField() {
        #expect {
            _ = try ParamsSchema.of(EnumNotCaseIterable.self)
        } throws: { error in
            let e = error as? ParamsSchemaError
            return e?.path == ["mode"] && "\(error)".contains("CaseIterable") && "\(error)".contains("params.mode")
        }
    }

    @Test func aTypeThatRefusesThePlaceholdersIsAnErrorNamingTheField() {
        #expect {
            _ = try ParamsSchema.of(ContainsValidating.self)
        } throws: { error in
            (error as? ParamsSchemaError)?.path == ["owner"] && "\(error)".contains("empty name")
        }
    }

    /// The daemon does not start with a method whose params it cannot describe (rather than
    /// publishing, and enforcing, a schema that lacks some of them).
    @Test func theMethodTableRefusesATypeTheRecorderCannotDescribe() async throws {
        let result = try await #require(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var table = MethodTable()
            table.add("test.bad", "a params type with an unlistable enum", access: .read, params: EnumNotCaseIterable.self) { _, p, _ in p.ioas }
        }
        let stderr = String(decoding: result.standardErrorContent, as: UTF8.self)
        #expect(stderr.contains("method test.bad: cannot derive the JSON Schema of EnumNotCaseIterable at params.mode"), "\(stderr)")
    }

    @Test func integerEnumsAreIntegerEnums() throws {
        let schema = try ParamsSchema.of(WithIntegerEnum.self)
        #expect(schema["properties"]?["level"] == ["type": "integer", "enum": [1, 2]])
        #expect(schema["required"] == ["level"])
    }

    @Test func aTypeWithoutFieldsTakesNoParams() throws {
        #expect(try ParamsSchema.of(NoParams.self) == ["type": "object", "properties": [:], "additionalProperties": false])
    }

    // MARK: Helpers

    /// Dotted paths of the `Optional.none` values inside `value`.
    static func unsetFields(_ value: Any, _ path: String = "") -> [String] {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first else { return [path] }
            return unsetFields(wrapped.value, path)
        }
        guard mirror.displayStyle == .struct else { return [] }
        return mirror.children.flatMap { child in
            unsetFields(child.value, path.isEmpty ? child.label ?? "?" : path + "." + (child.label ?? "?"))
        }
    }

    /// Whether the real decoder turns `params` into the sample's type.
    static func decodes<T: Decodable>(like sample: T, _ params: JSONValue) -> Bool {
        (try? JSONValueDecoder().decode(T.self, from: params)) != nil
    }

    /// The schema's type against an encoded value, recursively through objects.
    static func compare(_ schema: JSONValue, _ value: JSONValue, _ path: String) {
        // One type, or (a name or a number, hwqueue3) a list of them.
        let types = schema["type"]?.stringValue.map { [$0] } ?? schema["type"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let type = types.first
        switch value {
        case .bool: #expect(types.contains("boolean"), "\(path): a boolean, rpc.discover says \(schema)")
        case .int, .uint: #expect(types.contains("integer"), "\(path): an integer, rpc.discover says \(schema)")
        case .double: #expect(types.contains("number"), "\(path): a number, rpc.discover says \(schema)")
        case .string: #expect(types.contains("string"), "\(path): a string, rpc.discover says \(schema)")
        case .array(let items):
            #expect(type == "array", "\(path): an array, rpc.discover says \(schema)")
            if let first = items.first, let itemSchema = schema["items"] { compare(itemSchema, first, path + "[]") }
        case .object(let members):
            #expect(type == "object", "\(path): an object, rpc.discover says \(schema)")
            let props = schema["properties"]?.objectValue ?? [:]
            #expect(Set(props.keys) == Set(members.keys), "\(path): rpc.discover has \(props.keys.sorted()), the decoder takes \(members.keys.sorted())")
            #expect(schema["additionalProperties"] == false, "\(path): \(schema)")
            for (k, v) in members { if let p = props[k] { compare(p, v, path + "." + k) } }
        case .null:
            Issue.record("\(path): the sample encodes null")
        }
    }
}
