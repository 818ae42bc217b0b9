function __iommuctl_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __iommuctl_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __iommuctl_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __iommuctl_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __iommuctl_parse_tokens -S
    set -l unparsed_tokens (__iommuctl_tokens -pc)
    switch $unparsed_tokens[1]
    case 'iommuctl'
        __iommuctl_parse_subcommand 0 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'status'
            __iommuctl_parse_subcommand 0 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
        case 'devices'
            __iommuctl_parse_subcommand 0 'owner=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
        case 'device'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'info'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'attach'
                __iommuctl_parse_subcommand 1 'owner=' 'ioas=' 'hwpt=' 'dirty=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'detach'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'replace'
                __iommuctl_parse_subcommand 1 'ioas=' 'hwpt=' 'dirty=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'release'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'attach-pasid'
                __iommuctl_parse_subcommand 2 'hwpt=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'replace-pasid'
                __iommuctl_parse_subcommand 2 'hwpt=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'detach-pasid'
                __iommuctl_parse_subcommand 2 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'owner'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'create'
                __iommuctl_parse_subcommand 1 'dirty=' 'huge-pages=' 'tolerate-missing' 'no-tolerate-missing' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'list'
                __iommuctl_parse_subcommand 0 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'info'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'release'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'ioas'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'create'
                __iommuctl_parse_subcommand 0 'owner=' 'huge-pages=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'destroy'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'list'
                __iommuctl_parse_subcommand 0 'owner=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'info'
                __iommuctl_parse_subcommand 1 'max-mappings=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'map'
                __iommuctl_parse_subcommand 2 'memfd=' 'fd=' 'offset=' 'length=' 'iova=' 'read-only' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'unmap'
                __iommuctl_parse_subcommand 1 'iova=' 'length=' 'all' 'tolerate-missing' 'no-tolerate-missing' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'copy'
                __iommuctl_parse_subcommand 0 'from=' 'src-iova=' 'length=' 'to=' 'dst-iova=' 'read-only' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'ranges'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'set'
                __iommuctl_parse_subcommand 1 'huge-pages=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'hwpt'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'list'
                __iommuctl_parse_subcommand 0 'owner=' 'ioas=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'alloc'
                __iommuctl_parse_subcommand 0 'ioas=' 'device=' 'dirty-tracking' 'nest-parent' 'pasid' 'parent=' 'viommu=' 'data-type=' 'iotlb=' 'vtd-flags=' 'pgtbl-addr=' 'addr-width=' 'ste=' 'dte=' 'fault-queue=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'destroy'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'invalidate'
                __iommuctl_parse_subcommand 1 'entry=+' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'dirty'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'start'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'stop'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'read'
                __iommuctl_parse_subcommand 1 'iova=' 'length=' 'page-size=' 'no-clear' 'bitmap=' 'max-runs=' 'summary' 'packed' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'status'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'viommu'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'create'
                __iommuctl_parse_subcommand 1 'type=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'destroy'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'list'
                __iommuctl_parse_subcommand 0 'owner=' 'ioas=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'invalidate'
                __iommuctl_parse_subcommand 1 'entry=+' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'vdevice'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'create'
                __iommuctl_parse_subcommand 0 'viommu=' 'device=' 'virtual-id=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'destroy'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'fault'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'create'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'destroy'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'veventq'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'create'
                __iommuctl_parse_subcommand 1 'type=' 'depth=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'destroy'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'queue'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'list'
                __iommuctl_parse_subcommand 0 'owner=' 'viommu=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'read'
                __iommuctl_parse_subcommand 1 'count=' 'wait=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'hwqueue'
            __iommuctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'alloc'
                __iommuctl_parse_subcommand 0 'viommu=' 'type=' 'index=' 'base=' 'length=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            case 'destroy'
                __iommuctl_parse_subcommand 1 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
            end
        case 'watch'
            __iommuctl_parse_subcommand 0 'owner=' 'count=' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
        case 'metrics'
            __iommuctl_parse_subcommand 0 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
        case 'call'
            __iommuctl_parse_subcommand 2 'fd=+' 'socket=' 'json' 'compact' 'timeout=' 'version' 'h/help'
        case 'help'
            __iommuctl_parse_subcommand -r 1 'version'
        end
    end
end

function __iommuctl_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __iommuctl_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __iommuctl_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __iommuctl_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__iommuctl_tokens -p)
    if test -z "$(__iommuctl_tokens -t)"
        set -l index (count (__iommuctl_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'iommuctl' -f
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'status' -d 'Show the daemon\'s version, backend, kernel features and object counts.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'devices' -d 'List the devices the daemon knows, their IOMMU, lease and attachment.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'device' -d 'Attach, detach, re-attach and inspect one device.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'owner' -d 'Create, inspect and release owners (one per VM, usually).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'ioas' -d 'Create IO address spaces and map memory into them.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'hwpt' -d 'List, allocate and destroy hardware page tables.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'dirty' -d 'Start, stop and read dirty-page tracking of an IOAS.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'viommu' -d 'Create and destroy virtual IOMMUs (Linux >= 6.13).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'vdevice' -d 'Give a device its guest-visible ID on a vIOMMU.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'fault' -d 'Create and destroy I/O page fault queues (Linux >= 6.11).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'veventq' -d 'Create and destroy vIOMMU event queues (Linux >= 6.15).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'queue' -d 'List fault queues and vEVENTQs, and read their records.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'hwqueue' -d 'Allocate and destroy a vIOMMU\'s HW queues (Linux >= 6.17).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'watch' -d 'Stream the daemon\'s events (object lifecycle, attachments, dirty tracking) until interrupted.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'metrics' -d 'Print the daemon\'s metrics in the Prometheus text format.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'call' -d 'Call any JSON-RPC method with raw JSON params and print the answer.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl status" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl status" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl status" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl status" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl status" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl status" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl devices" owner' -l 'owner' -d 'Only devices leased to this owner.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl devices" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl devices" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl devices" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl devices" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl devices" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl devices" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl device" -eq 1' -fa 'info' -d 'Show one device: IOMMU instance, group, lease, attachment, capabilities.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl device" -eq 1' -fa 'attach' -d 'Lease a device to an owner and attach it to an IOAS or HWPT.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl device" -eq 1' -fa 'detach' -d 'Detach a device from its page table (it stays leased and bound).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl device" -eq 1' -fa 'replace' -d 'Move an attached device to another IOAS or HWPT without a DMA gap.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl device" -eq 1' -fa 'release' -d 'End an owner\'s lease on a device (detaches and unbinds it).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl device" -eq 1' -fa 'attach-pasid' -d 'Attach a PASID of a leased device to a PASID-capable HWPT of its owner.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl device" -eq 1' -fa 'replace-pasid' -d 'Move an attached PASID to another PASID-capable HWPT without a DMA gap.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl device" -eq 1' -fa 'detach-pasid' -d 'Detach a PASID of a device (its DMA with that PASID is blocked).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device info" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device info" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device info" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device info" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device info" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device info" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" owner' -l 'owner' -d 'The owner that leases the device.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" ioas' -l 'ioas' -d 'Attach through the auto-domain policy into this IOAS (reuses a compatible HWPT or allocates one).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" hwpt' -l 'hwpt' -d 'Attach to this HWPT (from `hwpt alloc`) instead.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" dirty' -l 'dirty' -d 'Dirty-tracking policy of a new HWPT. (default: the owner\'s policy)' -rfka 'off preferred required'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" ioas' -l 'ioas' -d 'Attach through the auto-domain policy into this IOAS (reuses a compatible HWPT or allocates one).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" hwpt' -l 'hwpt' -d 'Attach to this HWPT (from `hwpt alloc`) instead.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" dirty' -l 'dirty' -d 'Dirty-tracking policy of a new HWPT. (default: the owner\'s policy)' -rfka 'off preferred required'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device release" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device release" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device release" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device release" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device release" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device release" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach-pasid" hwpt' -l 'hwpt' -d 'The HWPT (allocated with --pasid).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach-pasid" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach-pasid" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach-pasid" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach-pasid" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach-pasid" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device attach-pasid" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace-pasid" hwpt' -l 'hwpt' -d 'The HWPT to move it to (allocated with --pasid).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace-pasid" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace-pasid" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace-pasid" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace-pasid" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace-pasid" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device replace-pasid" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach-pasid" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach-pasid" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach-pasid" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach-pasid" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach-pasid" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl device detach-pasid" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl owner" -eq 1' -fa 'create' -d 'Create an owner, with its policy.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl owner" -eq 1' -fa 'list' -d 'List the owners you can see, with what they hold.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl owner" -eq 1' -fa 'info' -d 'Show one owner: its policy, objects, devices and pinned memory.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl owner" -eq 1' -fa 'release' -d 'Tear down everything an owner holds, in a safe order, and forget it.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" dirty' -l 'dirty' -d 'Dirty-tracking policy of attaches that do not name one. (default: from the daemon\'s config)' -rfka 'off preferred required'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" huge-pages' -l 'huge-pages' -d 'Huge IOPTEs for new IOAS. (default: from the daemon\'s config)' -rfka 'on off'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" tolerate-missing' -l 'tolerate-missing' -d 'Unmapping a range with no mapping succeeds with 0 bytes instead of failing with NotFound (guest vIOMMU drivers send redundant unmaps). (default: from the daemon\'s config)'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" no-tolerate-missing' -l 'no-tolerate-missing' -d 'Unmapping a range with no mapping succeeds with 0 bytes instead of failing with NotFound (guest vIOMMU drivers send redundant unmaps). (default: from the daemon\'s config)'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner create" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner list" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner list" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner list" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner list" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner list" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner info" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner info" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner info" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner info" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner info" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner info" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner release" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner release" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner release" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner release" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner release" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl owner release" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'create' -d 'Create an IOAS for an owner.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'destroy' -d 'Destroy an IOAS (its mappings go with it; it must have no HWPT or device).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'list' -d 'List the IOAS you can see.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'info' -d 'Show one IOAS and its mappings.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'map' -d 'Map a file\'s memory (a memfd or regular file) into an IOAS.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'unmap' -d 'Unmap whole mappings inside an IOVA range (or all of them).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'copy' -d 'Map the pages behind a range of one IOAS into another IOAS.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'ranges' -d 'Show the IOVA ranges usable in an IOAS and the required alignment.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas" -eq 1' -fa 'set' -d 'Change an IOAS option (huge pages).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas create" owner' -l 'owner' -d 'The owner of the new IOAS.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas create" huge-pages' -l 'huge-pages' -d 'Let the IOAS use huge IOPTEs. Off gives base-page granularity, which dirty tracking of a small working set wants. (default: the owner\'s policy)' -rfka 'on off'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas create" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas create" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas create" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas create" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas create" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas create" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas destroy" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas destroy" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas destroy" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas destroy" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas destroy" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas destroy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas list" owner' -l 'owner' -d 'Only this owner\'s IOAS.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas list" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas list" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas list" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas list" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas list" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas info" max-mappings' -l 'max-mappings' -d 'List at most this many mappings (in IOVA order). (default: the daemon\'s, 1000)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas info" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas info" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas info" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas info" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas info" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas info" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl ioas map" -eq 1' -F
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" memfd' -l 'memfd' -d 'Map a new zero-filled memfd of this size instead of a file.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" fd' -l 'fd' -d 'Map this open descriptor of iommuctl\'s (a memfd or a dma-buf it inherited) instead of a file.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" offset' -l 'offset' -d 'Start of the range in the file.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" length' -l 'length' -d 'Bytes to map. (default: from --offset to the end of the file)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" iova' -l 'iova' -d 'Map at this IOVA. (default: the kernel chooses)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" read-only' -l 'read-only' -d 'Map read-only for devices (no IOMMU_IOAS_MAP_WRITEABLE); the file is opened read-only.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas map" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" iova' -l 'iova' -d 'Start of the range.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" length' -l 'length' -d 'Length of the range.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" all' -l 'all' -d 'Unmap every mapping of the IOAS.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" tolerate-missing' -l 'tolerate-missing' -d 'A range without mappings is a 0-byte success. (default: the owner\'s policy)'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" no-tolerate-missing' -l 'no-tolerate-missing' -d 'A range without mappings is a 0-byte success. (default: the owner\'s policy)'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas unmap" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" from' -l 'from' -d 'The source IOAS.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" src-iova' -l 'src-iova' -d 'Start of the source range.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" length' -l 'length' -d 'Length of the range.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" to' -l 'to' -d 'The destination IOAS.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" dst-iova' -l 'dst-iova' -d 'IOVA in the destination. (default: the kernel chooses)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" read-only' -l 'read-only' -d 'Map the copy read-only for devices.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas copy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas ranges" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas ranges" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas ranges" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas ranges" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas ranges" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas ranges" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas set" huge-pages' -l 'huge-pages' -d 'Huge IOPTEs (IOMMU_OPTION_HUGE_PAGES).' -rfka 'on off'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas set" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas set" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas set" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas set" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas set" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl ioas set" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl hwpt" -eq 1' -fa 'list' -d 'List HWPTs with their flags, devices and vIOMMUs.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl hwpt" -eq 1' -fa 'alloc' -d 'Allocate an HWPT from an IOAS for a device\'s IOMMU, or a nested HWPT on a nest parent or vIOMMU.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl hwpt" -eq 1' -fa 'destroy' -d 'Destroy an HWPT (no device or vIOMMU may use it).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl hwpt" -eq 1' -fa 'invalidate' -d 'Invalidate a nested HWPT\'s caches: every --entry in one IOMMU_HWPT_INVALIDATE.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt list" owner' -l 'owner' -d 'Only this owner\'s HWPTs.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt list" ioas' -l 'ioas' -d 'Only HWPTs of this IOAS.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt list" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt list" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt list" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt list" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt list" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" ioas' -l 'ioas' -d 'The IOAS to allocate from (a paging HWPT).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" device' -l 'device' -d 'A device behind the IOMMU the HWPT is for.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" dirty-tracking' -l 'dirty-tracking' -d 'IOMMU_HWPT_ALLOC_DIRTY_TRACKING: the HWPT can track dirty pages (fails on IOMMUs without it).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" nest-parent' -l 'nest-parent' -d 'IOMMU_HWPT_ALLOC_NEST_PARENT: the HWPT can be the stage-2 parent of a vIOMMU.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" pasid' -l 'pasid' -d 'IOMMU_HWPT_ALLOC_PASID: device PASIDs may attach to the HWPT (`device attach-pasid`), and a device with PASIDs attached needs its RID on such an HWPT.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" parent' -l 'parent' -d 'A nest-parent HWPT: allocate a nested HWPT on it.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" viommu' -l 'viommu' -d 'A vIOMMU: allocate a nested HWPT on it (over its nest parent).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" data-type' -l 'data-type' -d 'The nested HWPT\'s data type: selftest, vtd_s1, arm_smmuv3, amd_guest.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" iotlb' -l 'iotlb' -d 'selftest data: the value every mock IOTLB entry starts with.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" vtd-flags' -l 'vtd-flags' -d 'vtd_s1 data: the flags (SRE 1, EAFE 2, WPE 4).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" pgtbl-addr' -l 'pgtbl-addr' -d 'vtd_s1 data: the guest\'s first-stage page table root (4 KiB aligned).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" addr-width' -l 'addr-width' -d 'vtd_s1 data: the first-stage address width, 48 or 57.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" ste' -l 'ste' -d 'arm_smmuv3 data: the guest STE\'s first two 64-bit words, comma-separated.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" dte' -l 'dte' -d 'amd_guest data: the guest DTE\'s four 64-bit words, comma-separated.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" fault-queue' -l 'fault-queue' -d 'IOMMU_HWPT_FAULT_ID_VALID: the HWPT\'s I/O page faults go to this fault queue of the owner (`fault create`).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt alloc" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt destroy" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt destroy" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt destroy" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt destroy" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt destroy" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt destroy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt invalidate"' -l 'entry' -d 'One entry, key=value,... (repeat for more).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt invalidate" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt invalidate" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt invalidate" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt invalidate" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt invalidate" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwpt invalidate" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl dirty" -eq 1' -fa 'start' -d 'Start dirty tracking on every HWPT of an IOAS.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl dirty" -eq 1' -fa 'stop' -d 'Stop dirty tracking on every HWPT of an IOAS.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl dirty" -eq 1' -fa 'read' -d 'Read (and by default clear) the dirty pages of an IOVA range.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl dirty" -eq 1' -fa 'status' -d 'Show whether an IOAS is tracked, and what escapes tracking.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty start" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty start" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty start" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty start" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty start" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty start" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty stop" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty stop" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty stop" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty stop" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty stop" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty stop" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" iova' -l 'iova' -d 'Start of the range (aligned to the page size).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" length' -l 'length' -d 'Length of the range (a multiple of the page size).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" page-size' -l 'page-size' -d 'Bitmap granularity, a power of two. (default: the daemon\'s, the IOMMU\'s base page size)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" no-clear' -l 'no-clear' -d 'Leave the dirty bits set (NO_CLEAR).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" bitmap' -l 'bitmap' -d 'Write the raw bitmap to this file instead of listing runs.' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" max-runs' -l 'max-runs' -d 'Return at most this many runs; the summary says where to resume. (default: the daemon\'s)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" summary' -l 'summary' -d 'Print only the summary line, not the runs.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" packed' -l 'packed' -d 'Ask for the runs packed (format packed_runs: one base64 string, much faster for large harvests); printed as usual.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty read" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty status" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty status" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty status" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty status" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty status" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl dirty status" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl viommu" -eq 1' -fa 'create' -d 'Create a vIOMMU for an attached device\'s physical IOMMU.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl viommu" -eq 1' -fa 'destroy' -d 'Destroy a vIOMMU (its vDevices must be gone).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl viommu" -eq 1' -fa 'list' -d 'List vIOMMUs.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl viommu" -eq 1' -fa 'invalidate' -d 'Invalidate a vIOMMU\'s caches: every --entry in one IOMMU_HWPT_INVALIDATE.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu create" type' -l 'type' -d 'vIOMMU type: arm-smmuv3, tegra241-cmdqv, selftest, or a number. (default: implied by the device\'s IOMMU, else the daemon\'s config)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu create" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu create" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu create" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu create" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu create" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu create" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu destroy" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu destroy" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu destroy" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu destroy" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu destroy" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu destroy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu list" owner' -l 'owner' -d 'Only this owner\'s vIOMMUs.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu list" ioas' -l 'ioas' -d 'Only the vIOMMUs in this IOAS.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu list" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu list" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu list" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu list" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu list" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu invalidate"' -l 'entry' -d 'One entry, key=value,... (repeat for more).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu invalidate" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu invalidate" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu invalidate" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu invalidate" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu invalidate" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl viommu invalidate" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl vdevice" -eq 1' -fa 'create' -d 'Create a vDevice: a device\'s virtual ID (e.g. vSMMU stream ID) on a vIOMMU.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl vdevice" -eq 1' -fa 'destroy' -d 'Destroy a vDevice.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" viommu' -l 'viommu' -d 'The vIOMMU id.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" device' -l 'device' -d 'The device (on the vIOMMU\'s physical IOMMU).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" virtual-id' -l 'virtual-id' -d 'The guest-visible ID (hex with 0x, or decimal).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice create" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice destroy" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice destroy" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice destroy" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice destroy" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice destroy" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl vdevice destroy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl fault" -eq 1' -fa 'create' -d 'Create a fault queue of an owner.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl fault" -eq 1' -fa 'destroy' -d 'Destroy a fault queue (no HWPT may deliver to it).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault create" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault create" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault create" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault create" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault create" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault create" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault destroy" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault destroy" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault destroy" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault destroy" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault destroy" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl fault destroy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl veventq" -eq 1' -fa 'create' -d 'Create a vEVENTQ on a vIOMMU.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl veventq" -eq 1' -fa 'destroy' -d 'Destroy a vEVENTQ.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq create" type' -l 'type' -d 'enum iommu_veventq_type (1: ARM SMMUv3). (default: implied by the vIOMMU\'s IOMMU)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq create" depth' -l 'depth' -d 'Events queued before the queue loses events, 1 ... 524288. (default: 1024)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq create" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq create" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq create" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq create" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq create" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq create" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq destroy" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq destroy" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq destroy" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq destroy" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq destroy" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl veventq destroy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl queue" -eq 1' -fa 'list' -d 'List fault queues and vEVENTQs with their counters.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl queue" -eq 1' -fa 'read' -d 'Take a queue\'s fd (queue.fd) and print the records read from it.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue list" owner' -l 'owner' -d 'Only this owner\'s queues.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue list" viommu' -l 'viommu' -d 'Only the vEVENTQs of this vIOMMU.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue list" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue list" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue list" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue list" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue list" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue read" count' -l 'count' -d 'Exit after this many records. (default: read until interrupted or the queue is gone)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue read" wait' -l 'wait' -d 'Give up when no record came for this many seconds. (default: wait as long as it takes)' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue read" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue read" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue read" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue read" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue read" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl queue read" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl hwqueue" -eq 1' -fa 'alloc' -d 'Allocate a HW queue of a vIOMMU over mapped guest memory.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_positional "iommuctl hwqueue" -eq 1' -fa 'destroy' -d 'Destroy a HW queue (on the mock vIOMMU, highest index first).'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" viommu' -l 'viommu' -d 'The vIOMMU id.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" type' -l 'type' -d 'HW queue type: selftest, tegra241_cmdqv (refused), or a number of enum iommu_hw_queue_type.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" index' -l 'index' -d 'The queue\'s index on the vIOMMU.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" base' -l 'base' -d 'The queue\'s guest-physical base address (an IOVA of the vIOMMU\'s IOAS, mapped).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" length' -l 'length' -d 'The queue\'s length in bytes (4096, 4K ...).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue alloc" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue destroy" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue destroy" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue destroy" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue destroy" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue destroy" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl hwqueue destroy" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl watch" owner' -l 'owner' -d 'Only this owner\'s events (and daemon-wide ones).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl watch" count' -l 'count' -d 'Exit after this many events.' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl watch" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl watch" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl watch" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl watch" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl watch" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl watch" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl metrics" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl metrics" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl metrics" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl metrics" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl metrics" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl metrics" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl call"' -l 'fd' -d 'Open this file (read-write, or read-only if that is refused) and send its descriptor. Repeatable.' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl call" socket' -l 'socket' -d 'The daemon\'s control socket. (default: $IOMMUFDD_SOCKET, else /run/iommufdd/control.sock; for a non-root user without it, $XDG_RUNTIME_DIR/iommufdd/control.sock)' -rF
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl call" json' -l 'json' -d 'Print the daemon\'s answer as JSON (keys sorted) instead of a table.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl call" compact' -l 'compact' -d 'With --json: print the JSON on one line. Implies --json.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl call" timeout' -l 'timeout' -d 'Seconds to wait for each answer of the daemon (0: wait forever).' -rfka ''
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl call" version' -l 'version' -d 'Show the version.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl call" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'iommuctl' -n '__iommuctl_should_offer_completions_for_flags_or_options "iommuctl help" version' -l 'version' -d 'Show the version.'
