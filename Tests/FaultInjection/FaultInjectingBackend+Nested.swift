import IommufdCore

// MARK: nested

extension FaultInjectingBackend: NestedIommuBackend {
    public func allocNestedHWPT(deviceID: ObjectID, parentID: ObjectID, flags: HWPTAllocFlags, data: HWPTUserData) throws -> ObjectID {
        try run(.allocNestedHWPT, "device \(deviceID) on \(parentID) data type \(data.type)") {
            guard let inner = inner.nested else { throw IommuError(.ENOTTY, "IOMMU_HWPT_ALLOC", detail: "the wrapped backend has no nested HWPTs") }
            return try inner.allocNestedHWPT(deviceID: deviceID, parentID: parentID, flags: flags, data: data)
        }
    }

    public func invalidate(_ id: ObjectID, _ request: InvalidationRequest) -> InvalidationResult {
        do {
            return try run(.invalidate, "object \(id), \(request.entryCount) entries") {
                guard let inner = inner.nested else { throw IommuError(.ENOTTY, "IOMMU_HWPT_INVALIDATE") }
                return inner.invalidate(id, request)
            }
        } catch let error as IommuError {
            return InvalidationResult(done: 0, error: error)
        } catch {
            return InvalidationResult(done: 0, error: IommuError(.EIO, "IOMMU_HWPT_INVALIDATE", detail: "\(error)"))
        }
    }
}
