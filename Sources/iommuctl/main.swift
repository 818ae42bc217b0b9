print("iommuctl: not yet wired")
