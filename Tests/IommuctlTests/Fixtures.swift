import IommufdRPC

/// Answers shaped like the contract's types (Sources/IommufdContract), as the daemon sends them.
enum Fixtures {
    static let daemonInfo = FakeDaemon.json("""
        {"version":"0.1.0","backend":"sim","uptime_seconds":302,"pid":42,
         "features":{"dirtyTracking":true,"selftest":false,"viommu":true},
         "counts":{"owners":1,"ioas":2,"hwpts":1,"viommus":0,"vdevices":0,"mappings":3,"pinned_bytes":1073741824,
                   "devices_known":4,"devices_allowed":3,"devices_leased":1,"devices_attached":1,
                   "dirty_tracking_ioas":1,"subscribers":0},
         "journal":"memfd","config_file":"/etc/iommufdd/iommufdd.toml","connections":2,"restart_keeps_objects":false,
         "started_at":"2026-11-22T00:36:00Z","warnings":["simulator backend: no device does real DMA"]}
        """)

    static let devices = FakeDaemon.json("""
        {"devices":[
          {"name":"sim1","kind":"mdev","allowed":true,"leased":false},
          {"name":"sim0","kind":"simulated","pci_address":"0000:00:01.0","iommu_group":1,"iommu_instance":"smmu0",
           "allowed":true,"leased":true,"owner":"vm1","device_id":1,"ioas":2,"pt":3,
           "capabilities":{"hw_info_type":2,"dirty_tracking":true,"pasid":false}},
          {"name":"sim2","kind":"simulated","iommu_instance":"smmu1","allowed":false,"leased":true}
        ]}
        """)

    static let deviceInfo = FakeDaemon.json("""
        {"name":"sim0","kind":"simulated","pci_address":"0000:00:01.0","iommu_group":1,"iommu_instance":"smmu0",
         "driver":"vfio-pci","vendor_device":"1234:11e8","allowed":true,"leased":true,"owner":"vm1","device_id":1,
         "ioas":2,"pt":3,"capabilities":{"hw_info_type":2,"dirty_tracking":true,"pasid":true}}
        """)

    static let attach = FakeDaemon.json("""
        {"device":"sim0","device_id":1,"ioas":2,"pt":3,"hwpt_created":true,"dirty_tracking":true,"destroyed_hwpts":[]}
        """)

    static let replace = FakeDaemon.json("""
        {"device":"sim0","device_id":1,"ioas":2,"pt":9,"hwpt_created":false,"dirty_tracking":false,"previous_pt":3,"destroyed_hwpts":[3]}
        """)

    static let detach = FakeDaemon.json(#"{"device":"sim0","previous_pt":3,"destroyed_hwpts":[3]}"#)

    static let ownerInfo = FakeDaemon.json("""
        {"name":"vm1","identity":"libvirt","creator_uid":107,
         "policy":{"tolerate_missing":true,"dirty":"preferred","huge_pages":false},
         "ioas":[2],"hwpts":[3],"viommus":[5],"vdevices":[],"devices":["sim0"],"mappings":3,
         "pinned_bytes":536870912,"quota_bytes":2147483648}
        """)

    static var ownerList: JSONValue { ["owners": [ownerInfo]] }

    static let ioasInfo = FakeDaemon.json("""
        {"ioas":2,"owner":"vm1","huge_pages":true,"mapping_count":2,"pinned_bytes":3145728,"hwpts":[3],
         "devices":["sim0"],"dirty_tracking":false,
         "mappings":[{"iova":1048576,"length":1048576,"readable":true,"writeable":false,"source":"file"},
                     {"iova":0,"length":2097152,"readable":true,"writeable":true,"source":"mmap"}]}
        """)

    static let ioasList = FakeDaemon.json("""
        {"ioas":[{"ioas":2,"owner":"vm1","huge_pages":true,"mapping_count":2,"pinned_bytes":3145728,"hwpts":[3],
                  "devices":["sim0"],"dirty_tracking":true,"mappings":[]}]}
        """)

    static let hwptInfo = FakeDaemon.json("""
        {"hwpt":3,"owner":"vm1","ioas":2,"dirty_tracking":true,"nest_parent":false,"auto":true,
         "iommu_instance":"smmu0","devices":["sim0"],"viommus":[],"tracking":true}
        """)

    static let nestedHWPTInfo = FakeDaemon.json("""
        {"hwpt":11,"owner":"vm1","ioas":2,"dirty_tracking":false,"nest_parent":false,"auto":false,
         "iommu_instance":"mock0","devices":["sim0"],"viommus":[],"tracking":false,
         "nested":{"parent":6,"data_type":"selftest"}}
        """)

    static let dirtyStatus = FakeDaemon.json("""
        {"ioas":2,"enabled":true,"tracking_hwpts":[3],"untrackable_hwpts":[4],"untracked_devices":["sim1"]}
        """)

    static let ranges = FakeDaemon.json("""
        {"ioas":2,"alignment":4096,"ranges":[{"start":0,"last":134217727},{"start":4294967296,"last":18446744073709551615}]}
        """)

    static let viommuCreate = FakeDaemon.json("""
        {"viommu":5,"ioas":2,"nest_parent":6,"nest_parent_created":true,"iommu_instance":"smmu0","moved_from":3}
        """)

    static let release = FakeDaemon.json("""
        {"name":"vm1","released":true,"destroyed":{"ioas":1,"hwpt":2,"mapping":3,"device":1,"viommu":0},
         "refunded_bytes":3145728,"failures":[]}
        """)
}
