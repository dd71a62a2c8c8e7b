// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title AdvanciaBridge
/// @notice Lock-and-release bridge endpoint secured by M-of-N secp256k1 validator attestations.
/// Wire format: docs/decisions/0012-bridge.md (shared with the Solana program and the relayer).
contract AdvanciaBridge {
    /// One bridged transfer. Encoded as 7 ABI words; `asset` and `amount` are on the destination.
    struct Message {
        uint32 originDomain;
        uint64 sequence;
        bytes32 sender;
        uint32 destinationDomain;
        bytes32 recipient;
        bytes32 asset;
        uint256 amount;
    }

    /// Outbound route of a local asset (address(0) = native coin) to one destination domain.
    struct Route {
        bytes32 remoteAsset;
        uint8 localDecimals;
        uint8 remoteDecimals;
        bool enabled;
    }

    bytes32 public constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)");
    bytes32 public constant ATTESTATION_TYPEHASH = keccak256("Attestation(bytes32 messageId,uint64 setVersion)");
    bytes32 private constant NAME_HASH = keccak256("AdvanciaBridge");
    bytes32 private constant VERSION_HASH = keccak256("1");
    /// secp256k1 n / 2: signatures with a larger s are the malleated twin of a valid one.
    uint256 private constant HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    /// 10**77 is the largest power of ten below 2**256.
    uint8 private constant MAX_DECIMALS = 77;

    uint32 public immutable localDomain;
    bytes32 private immutable _localDomainSeparator;

    address public owner;
    address public pendingOwner;
    bool public paused;
    uint64 public nextSequence;
    uint64 public setVersion;
    uint256 public threshold;
    address[] private _validators;
    mapping(address => bool) public isValidator;
    mapping(bytes32 => bool) public processed;
    mapping(address => mapping(uint32 => Route)) private _routes;
    uint256 private _reentrancyStatus = 1;

    event Dispatch(
        bytes32 indexed id,
        uint64 indexed sequence,
        uint32 indexed destinationDomain,
        uint32 originDomain,
        bytes32 sender,
        bytes32 recipient,
        bytes32 asset,
        uint256 amount,
        address localAsset,
        uint256 localAmount
    );
    event Process(
        bytes32 indexed id,
        uint32 indexed originDomain,
        uint64 indexed sequence,
        bytes32 recipient,
        bytes32 asset,
        uint256 amount
    );
    event ValidatorSetUpdated(uint64 indexed setVersion, address[] validators, uint256 threshold);
    event RouteSet(
        address indexed localAsset,
        uint32 indexed destinationDomain,
        bytes32 remoteAsset,
        uint8 localDecimals,
        uint8 remoteDecimals
    );
    event RouteRemoved(address indexed localAsset, uint32 indexed destinationDomain);
    event LiquidityAdded(address indexed asset, address indexed from, uint256 amount);
    event Paused(address indexed by);
    event Unpaused(address indexed by);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    // process() checks, in the order they run (cheapest first).
    error BridgePaused();
    error WrongDestinationDomain(uint32 expected, uint32 actual);
    error WrongSetVersion(uint64 current, uint64 provided);
    error AlreadyProcessed(bytes32 id);
    error BelowThreshold(uint256 provided, uint256 threshold);
    error SignatureMalformed(uint256 index);
    error SignatureHighS(uint256 index);
    error SignatureUnrecoverable(uint256 index);
    error SignersNotAscending(uint256 index);
    error NotValidator(address signer);
    // Release and dispatch.
    error InvalidRecipient(bytes32 recipient);
    error InvalidAsset(bytes32 asset);
    error NativeTransferFailed();
    error TokenTransferFailed(address token);
    error TransferAmountMismatch(uint256 expected, uint256 received);
    error RouteNotFound(address localAsset, uint32 destinationDomain);
    error InexactConversion(uint256 amount, uint8 localDecimals, uint8 remoteDecimals);
    error AmountOverflow();
    error ZeroAmount();
    error ValueMismatch(uint256 expected, uint256 sent);
    error SameDomain();
    // Administration.
    error NotOwner();
    error NotPendingOwner();
    error InvalidValidatorSet();
    error InvalidThreshold(uint256 threshold, uint256 validators);
    error InvalidDecimals();
    error Reentrancy();
    error DomainOutOfRange(uint256 chainId);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    modifier nonReentrant() {
        if (_reentrancyStatus != 1) revert Reentrancy();
        _reentrancyStatus = 2;
        _;
        _reentrancyStatus = 1;
    }

    modifier whenNotPaused() {
        if (paused) revert BridgePaused();
        _;
    }

    /// The local domain is the chain id (the format's EVM convention).
    constructor(address initialOwner, address[] memory validators_, uint256 threshold_) {
        if (block.chainid > type(uint32).max) revert DomainOutOfRange(block.chainid);
        localDomain = uint32(block.chainid);
        _localDomainSeparator = _domainSeparator(uint32(block.chainid));
        owner = initialOwner;
        emit OwnershipTransferred(address(0), initialOwner);
        _setValidators(validators_, threshold_);
    }

    // ---------------------------------------------------------------- origin side

    /// Locks `amount` of `localAsset` (address(0): the native coin, sent as msg.value) and emits
    /// the message for `destinationDomain`. Returns the message id.
    function dispatch(address localAsset, uint256 amount, uint32 destinationDomain, bytes32 recipient)
        external
        payable
        nonReentrant
        whenNotPaused
        returns (bytes32 id)
    {
        if (amount == 0) revert ZeroAmount();
        if (destinationDomain == localDomain) revert SameDomain();
        if (recipient == bytes32(0)) revert InvalidRecipient(recipient);
        Route memory outbound = _routes[localAsset][destinationDomain];
        if (!outbound.enabled) revert RouteNotFound(localAsset, destinationDomain);
        uint256 remoteAmount = _convert(amount, outbound.localDecimals, outbound.remoteDecimals);

        if (localAsset == address(0)) {
            if (msg.value != amount) revert ValueMismatch(amount, msg.value);
        } else {
            if (msg.value != 0) revert ValueMismatch(0, msg.value);
            _pullToken(localAsset, amount);
        }

        Message memory message = Message({
            originDomain: localDomain,
            sequence: nextSequence,
            sender: bytes32(uint256(uint160(msg.sender))),
            destinationDomain: destinationDomain,
            recipient: recipient,
            asset: outbound.remoteAsset,
            amount: remoteAmount
        });
        nextSequence = message.sequence + 1;
        id = _messageId(message);
        _emitDispatch(id, message, localAsset, amount);
    }

    /// Funds the bridge with released-side liquidity (address(0): native, as msg.value).
    function addLiquidity(address asset, uint256 amount) external payable nonReentrant {
        if (amount == 0) revert ZeroAmount();
        if (asset == address(0)) {
            if (msg.value != amount) revert ValueMismatch(amount, msg.value);
        } else {
            if (msg.value != 0) revert ValueMismatch(0, msg.value);
            _pullToken(asset, amount);
        }
        emit LiquidityAdded(asset, msg.sender, amount);
    }

    // ---------------------------------------------------------------- destination side

    /// Releases the funds of `message` when at least `threshold` validators of set `setVersion_`
    /// signed its EIP-712 attestation. Signatures are 65 bytes r||s||v, ordered by signer address.
    function process(Message calldata message, uint64 setVersion_, bytes[] calldata signatures)
        external
        nonReentrant
    {
        if (paused) revert BridgePaused();
        if (message.destinationDomain != localDomain) {
            revert WrongDestinationDomain(localDomain, message.destinationDomain);
        }
        if (setVersion_ != setVersion) revert WrongSetVersion(setVersion, setVersion_);
        bytes32 id = _messageId(message);
        if (processed[id]) revert AlreadyProcessed(id);
        uint256 required = threshold;
        if (signatures.length < required) revert BelowThreshold(signatures.length, required);

        bytes32 digest_ = _attestationDigest(_localDomainSeparator, id, setVersion_);
        address previous = address(0);
        for (uint256 i = 0; i < signatures.length; ++i) {
            address signer = _recover(digest_, signatures[i], i);
            if (signer <= previous) revert SignersNotAscending(i);
            if (!isValidator[signer]) revert NotValidator(signer);
            previous = signer;
        }

        processed[id] = true;
        _release(message.asset, message.recipient, message.amount);
        emit Process(id, message.originDomain, message.sequence, message.recipient, message.asset, message.amount);
    }

    // ---------------------------------------------------------------- views

    function messageId(Message calldata message) external pure returns (bytes32) {
        return _messageId(message);
    }

    /// The digest validators sign for `message` on this contract at `setVersion_`
    /// (chainId = message.destinationDomain, salt = this contract).
    function digest(Message calldata message, uint64 setVersion_) external view returns (bytes32) {
        return _attestationDigest(_domainSeparator(message.destinationDomain), _messageId(message), setVersion_);
    }

    function domainSeparator() external view returns (bytes32) {
        return _localDomainSeparator;
    }

    function validators() external view returns (address[] memory) {
        return _validators;
    }

    function route(address localAsset, uint32 destinationDomain) external view returns (Route memory) {
        return _routes[localAsset][destinationDomain];
    }

    // ---------------------------------------------------------------- administration

    /// Replaces the validator set and threshold; bumps setVersion, so attestations for the old
    /// set stop being accepted.
    function setValidators(address[] calldata validators_, uint256 threshold_) external onlyOwner {
        _setValidators(validators_, threshold_);
    }

    function setThreshold(uint256 threshold_) external onlyOwner {
        _setValidators(_validators, threshold_);
    }

    function setRoute(
        address localAsset,
        uint32 destinationDomain,
        bytes32 remoteAsset,
        uint8 localDecimals,
        uint8 remoteDecimals
    ) external onlyOwner {
        if (localDecimals > MAX_DECIMALS || remoteDecimals > MAX_DECIMALS) revert InvalidDecimals();
        if (destinationDomain == localDomain) revert SameDomain();
        _routes[localAsset][destinationDomain] = Route(remoteAsset, localDecimals, remoteDecimals, true);
        emit RouteSet(localAsset, destinationDomain, remoteAsset, localDecimals, remoteDecimals);
    }

    function removeRoute(address localAsset, uint32 destinationDomain) external onlyOwner {
        delete _routes[localAsset][destinationDomain];
        emit RouteRemoved(localAsset, destinationDomain);
    }

    function pause() external onlyOwner {
        paused = true;
        emit Paused(msg.sender);
    }

    function unpause() external onlyOwner {
        paused = false;
        emit Unpaused(msg.sender);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner();
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }

    // ---------------------------------------------------------------- internals

    function _setValidators(address[] memory validators_, uint256 threshold_) private {
        if (threshold_ == 0 || threshold_ > validators_.length) {
            revert InvalidThreshold(threshold_, validators_.length);
        }
        uint256 old = _validators.length;
        for (uint256 i = 0; i < old; ++i) {
            isValidator[_validators[i]] = false;
        }
        delete _validators;
        for (uint256 i = 0; i < validators_.length; ++i) {
            address v = validators_[i];
            if (v == address(0) || isValidator[v]) revert InvalidValidatorSet();
            isValidator[v] = true;
            _validators.push(v);
        }
        threshold = threshold_;
        uint64 version = setVersion + 1;
        setVersion = version;
        emit ValidatorSetUpdated(version, validators_, threshold_);
    }

    /// Separate frame: the event's ten fields do not fit in dispatch's stack.
    function _emitDispatch(bytes32 id, Message memory m, address localAsset, uint256 localAmount) private {
        emit Dispatch(
            id, m.sequence, m.destinationDomain, m.originDomain, m.sender, m.recipient, m.asset, m.amount, localAsset, localAmount
        );
    }

    function _messageId(Message memory m) private pure returns (bytes32) {
        return keccak256(
            abi.encode(m.originDomain, m.sequence, m.sender, m.destinationDomain, m.recipient, m.asset, m.amount)
        );
    }

    function _domainSeparator(uint32 chainId) private view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, uint256(chainId), bytes32(uint256(uint160(address(this)))))
        );
    }

    function _attestationDigest(bytes32 separator, bytes32 id, uint64 version) private pure returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(ATTESTATION_TYPEHASH, id, version));
        return keccak256(abi.encodePacked(hex"1901", separator, structHash));
    }

    function _recover(bytes32 digest_, bytes calldata signature, uint256 index) private pure returns (address) {
        if (signature.length != 65) revert SignatureMalformed(index);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
        if (v < 27) v += 27;
        if (v != 27 && v != 28) revert SignatureMalformed(index);
        if (uint256(s) > HALF_CURVE_ORDER) revert SignatureHighS(index);
        address signer = ecrecover(digest_, v, r, s);
        if (signer == address(0)) revert SignatureUnrecoverable(index);
        return signer;
    }

    function _convert(uint256 amount, uint8 localDecimals, uint8 remoteDecimals) private pure returns (uint256) {
        if (remoteDecimals >= localDecimals) {
            uint256 factor = 10 ** (remoteDecimals - localDecimals);
            if (amount > type(uint256).max / factor) revert AmountOverflow();
            return amount * factor;
        }
        uint256 divisor = 10 ** (localDecimals - remoteDecimals);
        if (amount % divisor != 0) revert InexactConversion(amount, localDecimals, remoteDecimals);
        return amount / divisor;
    }

    function _release(bytes32 asset, bytes32 recipient, uint256 amount) private {
        if (uint256(recipient) >> 160 != 0 || recipient == bytes32(0)) revert InvalidRecipient(recipient);
        if (uint256(asset) >> 160 != 0) revert InvalidAsset(asset);
        address to = address(uint160(uint256(recipient)));
        address token = address(uint160(uint256(asset)));
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed();
        } else {
            _callToken(token, abi.encodeWithSelector(0xa9059cbb, to, amount)); // transfer(address,uint256)
        }
    }

    /// Pulls `amount` of `token` from msg.sender and insists the bridge received exactly that
    /// (fee-on-transfer tokens would otherwise leave the bridge under-collateralised).
    function _pullToken(address token, uint256 amount) private {
        uint256 before = _balanceOf(token);
        // transferFrom(address,address,uint256)
        _callToken(token, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
        uint256 received = _balanceOf(token) - before;
        if (received != amount) revert TransferAmountMismatch(amount, received);
    }

    function _balanceOf(address token) private view returns (uint256) {
        (bool ok, bytes memory data) = token.staticcall(abi.encodeWithSelector(0x70a08231, address(this)));
        if (!ok || data.length < 32) revert TokenTransferFailed(token);
        return abi.decode(data, (uint256));
    }

    /// SafeERC20-style call: the token must have code, the call must succeed, and a returned
    /// value (if any) must be true (tokens that return nothing are accepted).
    function _callToken(address token, bytes memory data) private {
        if (token.code.length == 0) revert TokenTransferFailed(token);
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok || (ret.length != 0 && (ret.length < 32 || !abi.decode(ret, (bool))))) {
            revert TokenTransferFailed(token);
        }
    }
}
