print("iommufd-conformance: not yet wired")
