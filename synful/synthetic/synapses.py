"""Polyadic synapses: placement where neurons touch, and their rendering.

A synapse site is a presynaptic T-bar (a dark dense body standing on the membrane) with a
cloud of vesicles behind it, both inside the presynaptic neuron, and one to four partner
neurons across the membrane, each with a postsynaptic density (a thickened, dark stretch of
its membrane facing the T-bar). As in the CREMI annotations, the pre point sits in the
presynaptic neuron by the T-bar and each post point inside its partner neuron, 80-280 nm away,
opposite the middle of the partner's contact by the T-bar (where an annotator would click, so
that the image fixes the point); both keep clear of other membranes, so that a detection a few
tens of nm off still lands in the right neuron.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .drawing import add_stamp, draw_ellipse, ring_stamp, section_profile, spread_points

# geometry in voxels (in-plane voxels are 4 nm, sections 40 nm)
SEARCH_RADIUS = 62  # in-plane half-size of the window searched for partners
# padding sites keep their points this far (sections, voxels, voxels) outside the cube, so that
# their T-bars, vesicle clouds and PSDs stay out of it
PADDING_GUARD = (3, 40, 40)
PRE_DEPTH = 14  # pre point: this far from the membrane into the presynaptic neuron, on the T-bar
PRE_CLEARANCE = 12  # pre point at least this far from any membrane (room for vector errors)
POST_CLEARANCE = 8  # post point at least this far from any other membrane
POST_DEPTH = (10.0, 14.0)  # post point: distance range from the presynaptic neuron
POST_MAX_LATERAL = 44  # post point at most this far (in-plane) from the T-bar's foot
CONTACT_WINDOW = (
    30  # post point faces the middle of its partner's contact within this distance of the foot
)
PRE_POST_NM = (80.0, 280.0)  # distance range between pre and post points
MIN_SITE_SPACING_NM = 300.0  # between the pre points of two sites
POST_SPACING_NM = 80.0  # between any two post points
CONTACT_RADIUS = 15  # a partner touches the presynaptic neuron within this box of its post
MIN_CONTACT = 8  # ... along at least this many voxels (32 nm)
SAME_SECTION_PROBABILITY = 0.6
PARTNER_COUNTS = (1, 2, 3, 4)
PARTNER_PROBABILITIES = (0.1, 0.3, 0.35, 0.25)

TBAR_DARKNESS = 110.0
VESICLE_DARKNESS = 60.0
PSD_DARKNESS = 85.0


@dataclass
class SynapseSite:
    """One presynaptic site and its partners, in voxel coordinates of the whole volume.

    Attributes:
        pre: (z, y, x) voxel of the pre point.
        pre_neuron: neuron index of the presynaptic neuron.
        foot: (y, x) membrane point the T-bar stands on (section ``pre[0]``).
        normal: (y, x) unit vector from the membrane into the presynaptic neuron.
        posts: list of (z, y, x) voxels of the post points.
        post_neurons: neuron index of each partner.
    """

    pre: np.ndarray
    pre_neuron: int
    foot: np.ndarray
    normal: np.ndarray
    posts: list[np.ndarray] = field(default_factory=list)
    post_neurons: list[int] = field(default_factory=list)


def _distance_to_neuron(labels: np.ndarray, neuron: int) -> np.ndarray:
    """Per section, in-plane distance (voxels) of each voxel to the nearest voxel of ``neuron``."""
    out = np.empty(labels.shape, dtype=np.float32)
    for z, section in enumerate(labels):
        inside = section == neuron
        if inside.any():
            out[z] = ndimage.distance_transform_edt(~inside)
        else:
            out[z] = np.inf
    return out


def _touches_through_own_contact(labels: np.ndarray, to_pre: np.ndarray) -> np.ndarray:
    """Per section, whether the contact with the presynaptic neuron nearest to each voxel
    belongs to the voxel's own neuron (so its neuron really touches the presynaptic one there,
    rather than lying behind a third neurite).

    Args:
        labels: (z, y, x) neuron index window.
        to_pre: in-plane distance of every voxel to the presynaptic neuron.
    """
    out = np.zeros(labels.shape, dtype=bool)
    for z, section in enumerate(labels):
        contact = (to_pre[z] > 0) & (to_pre[z] <= 1.0)
        if not contact.any():
            continue
        _, nearest = ndimage.distance_transform_edt(~contact, return_indices=True)
        out[z] = section[nearest[0], nearest[1]] == section
    return out


def propose_site(
    rng: np.random.Generator,
    index: np.ndarray,
    distance: np.ndarray,
    foot_voxel: np.ndarray,
    voxel_size: np.ndarray,
) -> SynapseSite | None:
    """Try to build a synapse site whose T-bar stands on the membrane at ``foot_voxel``.

    Returns ``None`` when the place does not allow a site (no room for the T-bar, or no
    partner neuron at a suitable distance).

    Args:
        rng: the random generator.
        index: (z, y, x) neuron index per voxel.
        distance: in-plane distance of every voxel to the nearest other neuron.
        foot_voxel: (z, y, x) voxel on a membrane (distance 1), in the presynaptic neuron.
        voxel_size: (z, y, x) voxel size in nm.
    """
    z, y, x = (int(v) for v in foot_voxel)
    depth, height, width = index.shape
    pre_neuron = int(index[z, y, x])
    z0, z1 = max(z - 1, 0), min(z + 2, depth)
    y0, y1 = max(y - SEARCH_RADIUS, 0), min(y + SEARCH_RADIUS + 1, height)
    x0, x1 = max(x - SEARCH_RADIUS, 0), min(x + SEARCH_RADIUS + 1, width)
    local = index[z0:z1, y0:y1, x0:x1]
    local_distance = distance[z0:z1, y0:y1, x0:x1]
    ly, lx, lz = y - y0, x - x0, z - z0

    # normal: from the other side of the membrane into the presynaptic neuron
    r = 6
    patch = local[lz, max(ly - r, 0) : ly + r + 1, max(lx - r, 0) : lx + r + 1]
    py, px = np.indices(patch.shape).reshape(2, -1)
    inside = (patch == pre_neuron).ravel()
    if inside.all() or not inside.any():
        return None
    normal = np.array(
        [py[inside].mean() - py[~inside].mean(), px[inside].mean() - px[~inside].mean()]
    )
    norm = np.hypot(*normal)
    if norm < 1e-6:
        return None
    normal /= norm

    pre_yx = np.rint(np.array([ly, lx]) + PRE_DEPTH * normal).astype(int)
    if not (0 <= pre_yx[0] < local.shape[1] and 0 <= pre_yx[1] < local.shape[2]):
        return None
    if (
        local[lz, pre_yx[0], pre_yx[1]] != pre_neuron
        or local_distance[lz, pre_yx[0], pre_yx[1]] < PRE_CLEARANCE
    ):
        return None
    # the T-bar, pre point and vesicle cloud need room inside the presynaptic neuron
    cloud_yx = np.rint(np.array([ly, lx]) + 20 * normal).astype(int)
    if not (0 <= cloud_yx[0] < local.shape[1] and 0 <= cloud_yx[1] < local.shape[2]):
        return None
    if local[lz, cloud_yx[0], cloud_yx[1]] != pre_neuron:
        return None

    to_pre = _distance_to_neuron(local, pre_neuron)
    gz, gy, gx = np.ogrid[: local.shape[0], : local.shape[1], : local.shape[2]]
    pre_post_nm = np.sqrt(
        ((gz - lz) * voxel_size[0]) ** 2
        + ((gy - pre_yx[0]) * voxel_size[1]) ** 2
        + ((gx - pre_yx[1]) * voxel_size[2]) ** 2
    )
    lateral = np.broadcast_to(np.hypot(gy - ly, gx - lx), local.shape)
    facing = (gy - ly) * normal[0] + (gx - lx) * normal[1]
    candidate = (
        (local != pre_neuron)
        & _touches_through_own_contact(local, to_pre)
        & (to_pre >= POST_DEPTH[0])
        & (to_pre <= POST_DEPTH[1])
        & (local_distance >= POST_CLEARANCE)
        & (pre_post_nm >= PRE_POST_NM[0])
        & (pre_post_nm <= PRE_POST_NM[1])
        & (lateral <= POST_MAX_LATERAL)
        & (facing <= 2)
    )
    if not candidate.any():
        return None
    # each partner needs a stretch of membrane against the presynaptic neuron near its post
    # point, for its postsynaptic density
    per_neuron = {}
    box = 2 * CONTACT_RADIUS + 1
    for neuron in np.unique(local[candidate]):
        contact = ((local == neuron) & (to_pre <= 1.0)).astype(np.float32)
        if contact.sum() < MIN_CONTACT:
            continue
        nearby = ndimage.uniform_filter(contact, size=(1, box, box), mode="constant") * box**2
        mine = candidate & (local == neuron) & (nearby >= MIN_CONTACT - 0.5)
        if mine.any():
            per_neuron[int(neuron)] = mine
    wanted = int(rng.choice(PARTNER_COUNTS, p=PARTNER_PROBABILITIES))
    # fly synapses are mostly polyadic: a site that wants several partners needs two or more
    if not per_neuron or len(per_neuron) < min(wanted, 2):
        return None
    chosen = rng.permutation(sorted(per_neuron))[:wanted]
    site = SynapseSite(
        pre=np.array([z, y0 + pre_yx[0], x0 + pre_yx[1]]),
        pre_neuron=pre_neuron,
        foot=np.array([y, x], dtype=np.float64),
        normal=normal,
    )
    for neuron in chosen:
        mine = per_neuron[int(neuron)]
        # partners' post points apart, so that their detections do not merge
        for post in site.posts:
            p = post - np.array([z0, y0, x0])
            apart = np.sqrt(
                ((gz - p[0]) * voxel_size[0]) ** 2
                + ((gy - p[1]) * voxel_size[1]) ** 2
                + ((gx - p[2]) * voxel_size[2]) ** 2
            )
            mine = mine & (apart >= POST_SPACING_NM)
        if not mine.any():
            continue
        # post points mostly in the T-bar's own section
        if mine[lz].any() and rng.random() < SAME_SECTION_PROBABILITY:
            pz = lz
        else:
            pz = int(rng.choice(np.unique(np.nonzero(mine)[0])))
        py_, px_ = _facing_contact_middle(
            mine[pz], local[pz] == neuron, to_pre[pz], lateral[pz], (ly, lx)
        )
        site.posts.append(np.array([z0 + pz, y0 + py_, x0 + px_]))
        site.post_neurons.append(int(neuron))
    if len(site.posts) < min(wanted, 2):
        return None
    return site


def _facing_contact_middle(
    allowed: np.ndarray,
    partner: np.ndarray,
    to_pre: np.ndarray,
    lateral: np.ndarray,
    foot: tuple[int, int],
) -> tuple[int, int]:
    """Where an annotator puts a partner's post point in one section: the allowed voxel
    nearest the middle of the partner's contact with the presynaptic neuron by the T-bar
    (within ``CONTACT_WINDOW`` of its foot), so that the point is fixed by what the image shows.

    Args:
        allowed: (y, x) voxels where the post point may go (not empty).
        partner: (y, x) voxels of the partner neuron.
        to_pre: (y, x) in-plane distance to the presynaptic neuron.
        lateral: (y, x) in-plane distance to the T-bar's foot.
        foot: (y, x) of the T-bar's foot (the middle when the partner has no contact here).
    """
    contact = partner & (to_pre <= 1.0) & (lateral <= CONTACT_WINDOW)
    middle = np.argwhere(contact).mean(axis=0) if contact.any() else np.asarray(foot, dtype=float)
    where = np.argwhere(allowed)
    pick = where[np.argmin(np.hypot(*(where - middle).T))]
    return int(pick[0]), int(pick[1])


def _nearest(points: list[np.ndarray], point: np.ndarray) -> float:
    """Distance from ``point`` to the nearest of ``points`` (same units)."""
    return float(np.min(np.linalg.norm(np.asarray(points) - point, axis=1)))


def place_sites(
    rng: np.random.Generator,
    index: np.ndarray,
    distance: np.ndarray,
    cube: tuple[slice, slice, slice],
    voxel_size,
    density_per_um3: float,
) -> tuple[list[SynapseSite], list[SynapseSite]]:
    """Place synapse sites over the whole volume: annotated ones inside ``cube``, and
    unannotated ones in the padding around it (real padded CREMI raw has synapses there too).

    A site is annotated when its pre and post points all lie inside the cube (partners whose
    post point would leave the cube are dropped); a padding site keeps all its features well
    outside the cube, so that no unannotated synapse shows inside the labelled region.

    Args:
        rng: the random generator.
        index: (z, y, x) neuron index per voxel of the whole (padded) volume.
        distance: in-plane distance of every voxel to the nearest other neuron.
        cube: slices of the labelled cube inside the volume.
        voxel_size: (z, y, x) nm.
        density_per_um3: presynaptic sites per cubic micrometre, in the cube and the padding.

    Returns:
        (annotated sites, padding sites).
    """
    voxel_size = np.asarray(voxel_size, dtype=np.float64)
    um3 = float(np.prod(voxel_size)) * 1e-9
    cube_begin = np.array([s.start for s in cube])
    cube_end = np.array([s.stop for s in cube])
    cube_voxels = int(np.prod(cube_end - cube_begin))
    target_cube = int(round(density_per_um3 * cube_voxels * um3))
    target_padding = int(round(density_per_um3 * (index.size - cube_voxels) * um3))
    # keep padding synapses (with their PSD and vesicle clouds) clear of the cube
    guard = np.asarray(PADDING_GUARD)

    membrane = np.flatnonzero(distance.ravel() <= 1.0)
    order = rng.permutation(len(membrane))[: 60 * (target_cube + target_padding) + 200]
    annotated: list[SynapseSite] = []
    padding: list[SynapseSite] = []
    pres_nm: list[np.ndarray] = []
    posts_nm: list[np.ndarray] = []
    for flat in membrane[order]:
        if len(annotated) >= target_cube and len(padding) >= target_padding:
            break
        foot = np.array(np.unravel_index(flat, index.shape))
        foot_in_cube = np.all(foot >= cube_begin) and np.all(foot < cube_end)
        if foot_in_cube and len(annotated) >= target_cube:
            continue
        if not foot_in_cube and len(padding) >= target_padding:
            continue
        # cheap test on the foot first (the pre point is PRE_DEPTH voxels from it), exact below
        slack = PRE_DEPTH * float(voxel_size[1:].max())
        if pres_nm and _nearest(pres_nm, foot * voxel_size) < MIN_SITE_SPACING_NM - slack:
            continue
        site = propose_site(rng, index, distance, foot, voxel_size)
        if site is None:
            continue
        if pres_nm and _nearest(pres_nm, site.pre * voxel_size) < MIN_SITE_SPACING_NM:
            continue
        if (
            posts_nm
            and min(_nearest(posts_nm, p * voxel_size) for p in site.posts) < POST_SPACING_NM
        ):
            continue
        points = np.array([site.pre, *site.posts])
        inside = np.all((points >= cube_begin) & (points < cube_end), axis=1)
        near = np.all((points >= cube_begin - guard) & (points < cube_end + guard), axis=1)
        if inside[0] and len(annotated) < target_cube:
            keep = inside[1:]
            # a polyadic site cut down to one partner by the border is not placed
            if keep.sum() < min(len(keep), 2):
                continue
            site.posts = [p for p, k in zip(site.posts, keep) if k]
            site.post_neurons = [n for n, k in zip(site.post_neurons, keep) if k]
            annotated.append(site)
        elif not near.any() and len(padding) < target_padding:
            padding.append(site)
        else:
            continue
        pres_nm.append(site.pre * voxel_size)
        posts_nm.extend(post * voxel_size for post in site.posts)
    return annotated, padding


def render_site(
    rng: np.random.Generator, darkness: np.ndarray, index: np.ndarray, site: SynapseSite
) -> None:
    """Draw the T-bar, the vesicle cloud and the postsynaptic densities of ``site``.

    Args:
        rng: the random generator.
        darkness: (z, y, x) float32 field (grey values subtracted from the tissue), in place.
        index: (z, y, x) neuron index per voxel.
        site: the site to draw.
    """
    z = int(site.pre[0])
    n = site.normal
    tbar_profile = section_profile(rng, int(rng.integers(2, 4)), falloff=0.7)
    # pedestal standing on the membrane, and the platform on top of it (a "T")
    draw_ellipse(
        darkness,
        z,
        site.foot + 4.5 * n,
        (5.0, 3.2),
        n,
        TBAR_DARKNESS,
        tbar_profile,
        index,
        site.pre_neuron,
    )
    draw_ellipse(
        darkness,
        z,
        site.foot + 10.0 * n,
        (2.8, 10.0),
        n,
        TBAR_DARKNESS,
        tbar_profile,
        index,
        site.pre_neuron,
    )
    # vesicle cloud around and behind the T-bar
    cloud_centre = site.foot + 17.0 * n
    tbar_centre = site.foot + 7.0 * n
    # the cloud spans the T-bar's sections and one more on either side
    cloud_sections = sorted(tbar_profile)
    extra = cloud_sections[0] - 1 if rng.random() < 0.5 else cloud_sections[-1] + 1
    for dz in sorted([*cloud_sections, extra]):
        zz = z + dz
        if not 0 <= zz < index.shape[0]:
            continue
        count = int(rng.integers(16, 26)) if dz in tbar_profile else int(rng.integers(8, 14))
        for point in spread_points(rng, cloud_centre, 24.0, count, 8.5):
            if np.hypot(*(point - tbar_centre)) < 11.0:
                continue
            stamp = ring_stamp(float(rng.uniform(3.2, 4.3)))
            add_stamp(darkness, zz, np.rint(point), stamp, VESICLE_DARKNESS, index, site.pre_neuron)
    # postsynaptic densities: the partner's membrane thickened where it faces the T-bar
    for post, neuron in zip(site.posts, site.post_neurons):
        draw_psd(darkness, index, post, neuron, site.pre_neuron, PSD_DARKNESS)


def draw_psd(
    darkness: np.ndarray,
    index: np.ndarray,
    centre: np.ndarray,
    neuron: int,
    facing_neuron: int,
    amplitude: float,
    radius: int = 22,
) -> None:
    """Darken and thicken the membrane of ``neuron`` where it touches ``facing_neuron``, within
    ``radius`` voxels (in-plane) of ``centre`` (z, y, x) and one section above and below."""
    z, y, x = (int(v) for v in centre)
    depth, height, width = index.shape
    reach = radius + 8
    y0, y1 = max(y - reach, 0), min(y + reach + 1, height)
    x0, x1 = max(x - reach, 0), min(x + reach + 1, width)
    ys = np.arange(y0, y1)[:, None]
    xs = np.arange(x0, x1)[None, :]
    near = np.clip((radius - np.hypot(ys - y, xs - x)) / 4.0, 0.0, 1.0)
    for dz, weight in ((-1, 0.6), (0, 1.0), (1, 0.6)):
        zz = z + dz
        if not 0 <= zz < depth:
            continue
        section = index[zz, y0:y1, x0:x1]
        if not (section == facing_neuron).any():
            continue
        to_facing = ndimage.distance_transform_edt(section != facing_neuron)
        # full strength over the first 5 voxels from the membrane, fading out by 7
        band = np.clip((7.0 - to_facing) / 2.0, 0.0, 1.0) * (section == neuron)
        darkness[zz, y0:y1, x0:x1] += amplitude * weight * band * near
