import IommufdCore

/// What `IOMMU_GET_HW_INFO` reports as vendor data for a simulated IOMMU instance: the struct of
/// its driver's type, with register values a real unit of that kind would have, derived from the
/// instance's own description so that they agree with how the simulator behaves (an instance
/// that cannot track dirty pages does not claim second-stage A/D bits, one without nesting no
/// first-stage translation, the address width and large pages are its aperture and page sizes).
extension SimTopology.IOMMU {
    /// Nil for a driver the simulator has no model of (type NONE, AMD, Tegra241 CMDQV): the
    /// answer then has no vendor data (`data_len` 0).
    public var vendorData: HWInfoVendorData? {
        switch hwInfoType {
        case HWInfoType.intelVTd: .intelVTd(vtdRegisters)
        case HWInfoType.armSMMUv3: .armSMMUv3(smmuv3Registers)
        case HWInfoType.selftest: .selftest(HWInfoVendorData.Selftest())
        default: nil
        }
    }

    /// Address bits the aperture needs (48 for 0...2^48-1).
    var addressWidth: Int { 64 - aperture.last.leadingZeroBitCount }

    /// VT-d CAP_REG and ECAP_REG (spec 11.4.2/11.4.3; the field positions of
    /// drivers/iommu/intel/cap_audit.h). A scalable-mode unit with PASID (20 bits), queued
    /// invalidation, interrupt remapping, device TLBs and page requests; second-stage A/D bits
    /// (SLADS) when `dirtyTracking`, first-stage translation, nesting and scalable-mode
    /// page-walk coherency (FLTS, NEST, SMPWC) when `nesting`.
    var vtdRegisters: HWInfoVendorData.VTd {
        let width = UInt64(addressWidth)
        // SAGAW: bit 1 = 39-bit (3-level), bit 2 = 48-bit (4-level), bit 3 = 57-bit (5-level).
        let sagaw: UInt64 = width <= 39 ? 0b0010 : width <= 48 ? 0b0100 : 0b1000
        var sllps: UInt64 = 0
        if pageSizes.contains(2 << 20) { sllps |= 1 << 0 }
        if pageSizes.contains(1 << 30) { sllps |= 1 << 1 }
        var cap: UInt64 = 6              // ND: 2^16 domain IDs
        cap |= 1 << 5 | 1 << 6           // PLMR, PHMR
        cap |= sagaw << 8
        cap |= (width - 1) << 16         // MGAW
        cap |= 1 << 22                   // ZLR
        cap |= 0x20 << 24                // FRO: fault recording at 0x200
        cap |= sllps << 34
        cap |= 1 << 39                   // PSI
        cap |= 7 << 40                   // NFR: 8 fault recording registers
        cap |= 0x3f << 48                // MAMV
        cap |= 1 << 54 | 1 << 55         // DWD, DRD
        if pageSizes.contains(1 << 30) { cap |= 1 << 56 }  // FL1GP
        cap |= 1 << 59                   // PI
        var ecap: UInt64 = 1 << 1 | 1 << 2 | 1 << 3 | 1 << 4 | 1 << 6  // QI, DT, IR, EIM, PT
        ecap |= 0x50 << 8                // IRO: IOTLB registers at 0x500
        ecap |= 0xf << 20                // MHMV
        ecap |= 1 << 29                  // PRS
        ecap |= 19 << 35                 // PSS: 20-bit PASIDs
        ecap |= 1 << 40 | 1 << 41 | 1 << 43  // PASID, DIT, SMTS
        ecap |= 1 << 46                  // SLTS
        if dirtyTracking { ecap |= 1 << 45 }                     // SLADS
        if nesting { ecap |= 1 << 26 | 1 << 47 | 1 << 48 }       // NEST, FLTS, SMPWC
        return HWInfoVendorData.VTd(flags: 0, capReg: cap, ecapReg: ecap)
    }

    /// SMMU_IDR0..5, IIDR and AIDR (SMMUv3 spec 6.3.1-6.3.6) of an SMMUv3.2 from Arm: two-level
    /// stream tables, AArch64 tables, 16-bit ASIDs and VMIDs, coherent, ATS, range invalidation
    /// and BBML2, 16-bit StreamIDs and 20-bit SubstreamIDs. S2P when `nesting` (what
    /// ARM_SMMU_FEAT_NESTING needs with S1P); HTTU access+dirty when `dirtyTracking`.
    var smmuv3Registers: HWInfoVendorData.SMMUv3 {
        var idr0: UInt32 = 1 << 1        // S1P
        if nesting { idr0 |= 1 << 0 }    // S2P
        idr0 |= 2 << 2                   // TTF: AArch64
        idr0 |= 1 << 4                   // COHACC
        if dirtyTracking { idr0 |= 2 << 6 }  // HTTU: access and dirty flags
        idr0 |= 1 << 10 | 1 << 12 | 1 << 13 | 1 << 14  // ATS, ASID16, MSI, SEV
        idr0 |= 1 << 18 | 1 << 19        // VMID16, CD2L
        idr0 |= 1 << 24                  // STALL_MODEL: stall not supported
        idr0 |= 1 << 27                  // ST_LEVEL: two-level stream table
        var idr1: UInt32 = 16            // SIDSIZE
        idr1 |= 20 << 6                  // SSIDSIZE
        idr1 |= 19 << 16 | 19 << 21      // EVTQS, CMDQS
        let idr3: UInt32 = 1 << 10 | 2 << 11  // RIL, BBML2
        var idr5: UInt32 = 5             // OAS: 48 bits
        if pageSizes.contains(4096) { idr5 |= 1 << 4 }       // GRAN4K
        if pageSizes.contains(16384) { idr5 |= 1 << 5 }      // GRAN16K
        if pageSizes.contains(65536) { idr5 |= 1 << 6 }      // GRAN64K
        if addressWidth > 48 { idr5 |= 1 << 10 }             // VAX: 52-bit VAs
        return HWInfoVendorData.SMMUv3(
            flags: 0, idr: [idr0, idr1, 0, idr3, 0, idr5],
            iidr: 0x487 << 20 | 0x43b,   // ProductID, Implementer: Arm
            aidr: 0x2)                   // SMMUv3.2
    }
}
