"""Synapse placement: annotated sites inside the cube, padding sites clear of it, contacts."""

import numpy as np
from scipy import ndimage

from synful.synthetic import neurons, synapses, texture

VOXEL = np.array([40.0, 4.0, 4.0])


def test_place_sites_inside_cube_and_in_padding():
    shape = (20, 360, 360)
    cube = (slice(4, 16), slice(90, 270), slice(90, 270))
    index = neurons.neuron_index(np.random.default_rng(0), shape)
    distance = texture.membrane_distance(index)
    annotated, padding = synapses.place_sites(
        np.random.default_rng(1), index, distance, cube, VOXEL, 15.0
    )
    assert annotated and padding
    begin = np.array([s.start for s in cube])
    end = np.array([s.stop for s in cube])
    guard = np.asarray(synapses.PADDING_GUARD)
    for site in annotated:
        points = np.array([site.pre, *site.posts])
        assert np.all((points >= begin) & (points < end))
    padding_darkness = np.zeros(shape, np.float32)
    for site in padding:
        points = np.array([site.pre, *site.posts])
        assert not np.any(np.all((points >= begin - guard) & (points < end + guard), axis=1))
        synapses.render_site(np.random.default_rng(2), padding_darkness, index, site)
    # nothing of an unannotated synapse shows inside the labelled cube
    assert padding_darkness.any() and not padding_darkness[cube].any()
    pres = np.array([s.pre for s in annotated + padding]) * VOXEL
    gaps = np.linalg.norm(pres[:, None] - pres[None], axis=-1) + np.eye(len(pres)) * 1e9
    assert gaps.min() >= synapses.MIN_SITE_SPACING_NM
    posts = np.array([p for s in annotated + padding for p in s.posts]) * VOXEL
    gaps = np.linalg.norm(posts[:, None] - posts[None], axis=-1) + np.eye(len(posts)) * 1e9
    assert gaps.min() >= synapses.POST_SPACING_NM
    for site in annotated + padding:
        assert index[tuple(site.pre)] == site.pre_neuron
        assert len(set(site.post_neurons)) == len(site.post_neurons)
        assert site.pre_neuron not in site.post_neurons
        for post, neuron in zip(site.posts, site.post_neurons):
            assert index[tuple(post)] == neuron
            low, high = synapses.PRE_POST_NM
            assert low <= np.linalg.norm((post - site.pre) * VOXEL) <= high
        # the T-bar stands on the presynaptic neuron's membrane, its normal pointing inside
        foot = np.rint(site.foot).astype(int)
        assert distance[site.pre[0], foot[0], foot[1]] <= 1.0
        inside = np.rint(site.foot + 5 * site.normal).astype(int)
        assert index[site.pre[0], inside[0], inside[1]] == site.pre_neuron


def test_render_site_darkens_tbar_and_partner_membranes():
    shape = (12, 200, 200)
    index = neurons.neuron_index(np.random.default_rng(3), shape)
    distance = texture.membrane_distance(index)
    cube = (slice(2, 10), slice(30, 170), slice(30, 170))
    annotated, _ = synapses.place_sites(
        np.random.default_rng(4), index, distance, cube, VOXEL, 30.0
    )
    site = annotated[0]
    darkness = np.zeros(shape, np.float32)
    synapses.render_site(np.random.default_rng(5), darkness, index, site)
    z = site.pre[0]
    tbar = np.rint(site.foot + 7 * site.normal).astype(int)
    assert (
        darkness[z, tbar[0] - 3 : tbar[0] + 4, tbar[1] - 3 : tbar[1] + 4].max()
        >= synapses.TBAR_DARKNESS * 0.9
    )
    for post, neuron in zip(site.posts, site.post_neurons):
        zz, y, x = post
        window = (zz, slice(max(y - 20, 0), y + 21), slice(max(x - 20, 0), x + 21))
        psd = darkness[window] * (index[window] == neuron)
        assert psd.max() >= synapses.PSD_DARKNESS * 0.9
    # nothing is drawn in neurons that are neither the presynaptic one nor a partner
    others = ~np.isin(index, [site.pre_neuron, *site.post_neurons])
    assert not np.any(darkness[others])


def test_post_point_faces_the_middle_of_its_contact():
    # presynaptic neuron 1 in the top rows, the partner 2 below it from x = 10 on
    section = np.ones((40, 60), dtype=np.int64)
    section[20:, :] = 3
    section[20:, 10:] = 2
    partner = section == 2
    to_pre = ndimage.distance_transform_edt(section != 1)
    foot = (19, 30)
    lateral = np.hypot(*(np.indices(section.shape) - np.array(foot)[:, None, None]))
    allowed = partner & (to_pre >= 7) & (to_pre <= 13)
    # the contact within CONTACT_WINDOW (30) of the foot spans x = 10..59: its middle is x = 34.5
    y, x = synapses._facing_contact_middle(allowed, partner, to_pre, lateral, foot)
    assert y == 26 and x in (34, 35)
    # a partner not touching here: the point nearest the foot
    y, x = synapses._facing_contact_middle(
        allowed, partner, np.full(section.shape, 5.0), lateral, foot
    )
    assert (y, x) == (26, 30)
