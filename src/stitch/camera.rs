//! The camera model: three cameras rotating about one centre, each a
//! pinhole with radial distortion, seen through a cylindrical panorama.
//!
//! # Conventions
//!
//! * **Frame of reference: CAM_C.** x right, y down, z forward along CAM_C's
//!   axis. CAM_C has yaw, pitch and roll 0 by definition; the panorama's
//!   horizon is CAM_C's.
//! * **Angles as ffmpeg's `v360` takes them**, in degrees: a camera's
//!   world-from-camera rotation is `Ry(yaw) * Rx(pitch) * Rz(roll)` with
//!   v360's matrices, so positive yaw looks right, positive pitch looks up.
//!   (A rig rendered with `v360=output=flat:yaw=..:pitch=..:roll=..`, as the
//!   tests and the demo do, is calibrated back to those same numbers.)
//! * **FOV** is the horizontal angle between the outer edges of the frame's
//!   outer pixels: focal `f = (W/2) / tan(hfov/2)` pixels, centre at pixel
//!   index `(W-1)/2` (pixel `i`'s centre is index `i`).
//! * **Distortion** as ffmpeg's `lenscorrection`: the ideal (pinhole) pixel
//!   at offset `d` from the frame centre `(W/2, H/2)` is found in the
//!   recording at `d * (1 + k1 r^2 + k2 r^4)`, `r = |d| / (half diagonal)`.
//!   So `lenscorrection=k1:k2` on a recording gives the pinhole image.
//!
//! # Why cylindrical
//!
//! A pitch seen from the sideline is wide (150-200 degrees) and not tall. A
//! cylinder keeps verticals vertical and the horizon straight, has the same
//! resolution at every azimuth (a flat projection blows up towards 90
//! degrees and cannot reach them), and stretches nothing vertically near the
//! horizon, where the play is. Spherical (equirectangular) would squash the
//! near touchline, which is below the horizon; the cylinder keeps it as the
//! centre camera sees it.

use serde::{Deserialize, Serialize};

/// A 3x3 rotation, rows first.
pub type Mat3 = [[f64; 3]; 3];

/// One camera's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// Degrees, positive to the right of CAM_C's axis.
    pub yaw_deg: f64,
    /// Degrees, positive up.
    pub pitch_deg: f64,
    /// Degrees, v360's sense.
    pub roll_deg: f64,
    /// Horizontal field of view, degrees (outer pixel edges).
    pub hfov_deg: f64,
    /// Radial distortion, `lenscorrection`'s `k1`.
    pub k1: f64,
    /// Radial distortion, `lenscorrection`'s `k2`.
    #[serde(default)]
    pub k2: f64,
}

impl Camera {
    /// A camera at `yaw_deg` with `hfov_deg` and nothing else.
    pub fn nominal(yaw_deg: f64, hfov_deg: f64) -> Camera {
        Camera {
            yaw_deg,
            pitch_deg: 0.0,
            roll_deg: 0.0,
            hfov_deg,
            k1: 0.0,
            k2: 0.0,
        }
    }

    /// Focal length in pixels for a frame `w` pixels wide.
    pub fn focal(&self, w: f64) -> f64 {
        (w / 2.0) / (self.hfov_deg.to_radians() / 2.0).tan()
    }

    /// World-from-camera rotation.
    pub fn rotation(&self) -> Mat3 {
        mul(
            &mul(&rot_y(self.yaw_deg), &rot_x(self.pitch_deg)),
            &rot_z(self.roll_deg),
        )
    }

    /// Where a world ray lands in a `w` x `h` recording, as pixel indices
    /// (fractional), or `None` behind the camera or beyond the radius where the
    /// lens's polynomial folds back. Not checked against the frame's bounds.
    pub fn project(&self, rot: &Mat3, ray: [f64; 3], w: f64, h: f64) -> Option<(f64, f64)> {
        // camera = R^T * world
        let c = [
            rot[0][0] * ray[0] + rot[1][0] * ray[1] + rot[2][0] * ray[2],
            rot[0][1] * ray[0] + rot[1][1] * ray[1] + rot[2][1] * ray[2],
            rot[0][2] * ray[0] + rot[1][2] * ray[1] + rot[2][2] * ray[2],
        ];
        if c[2] <= 1e-6 {
            return None;
        }
        let f = self.focal(w);
        let x = f * c[0] / c[2] + (w - 1.0) / 2.0;
        let y = f * c[1] / c[2] + (h - 1.0) / 2.0;
        self.within_fold(x, y, w, h)
            .then(|| self.distort(x, y, w, h))
    }

    /// Whether the ideal pixel `(x, y)` is inside the radius where the
    /// distortion still grows with the radius. Beyond it the polynomial
    /// folds back (a barrel k1 brings rays from far outside the view back
    /// into the frame), so no ray there is seen.
    fn within_fold(&self, x: f64, y: f64, w: f64, h: f64) -> bool {
        let (dx, dy) = (x - w / 2.0, y - h / 2.0);
        let r2 = (dx * dx + dy * dy) / ((w * w + h * h) / 4.0);
        1.0 + 3.0 * self.k1 * r2 + 5.0 * self.k2 * r2 * r2 > 0.0
    }

    /// The recording's pixel holding the ideal (pinhole) pixel `(x, y)`.
    pub fn distort(&self, x: f64, y: f64, w: f64, h: f64) -> (f64, f64) {
        if self.k1 == 0.0 && self.k2 == 0.0 {
            return (x, y);
        }
        let (cx, cy) = (w / 2.0, h / 2.0);
        let (dx, dy) = (x - cx, y - cy);
        let r2 = (dx * dx + dy * dy) / ((w * w + h * h) / 4.0);
        let m = 1.0 + self.k1 * r2 + self.k2 * r2 * r2;
        (cx + dx * m, cy + dy * m)
    }
}

/// A piece of the cylindrical panorama: `width` x `height` pixels at
/// `f` pixels per radian, centred on azimuth `yaw0_deg` and the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cylinder {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Pixels per radian, both ways.
    pub f: f64,
    /// Azimuth of the centre, degrees.
    pub yaw0_deg: f64,
}

impl Cylinder {
    /// The world ray through pixel `(u, v)` (pixel indices; v360's
    /// `(2i+1)/W` convention).
    pub fn ray(&self, u: f64, v: f64) -> [f64; 3] {
        let phi = (u + 0.5 - self.width as f64 / 2.0) / self.f + self.yaw0_deg.to_radians();
        let hgt = (v + 0.5 - self.height as f64 / 2.0) / self.f;
        [phi.sin(), hgt, phi.cos()]
    }

    /// Horizontal angle covered, degrees.
    pub fn hfov_deg(&self) -> f64 {
        (self.width as f64 / self.f).to_degrees()
    }

    /// Vertical angle covered, degrees.
    pub fn vfov_deg(&self) -> f64 {
        2.0 * (self.height as f64 / (2.0 * self.f)).atan().to_degrees()
    }
}

fn rot_y(deg: f64) -> Mat3 {
    let (s, c) = deg.to_radians().sin_cos();
    [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
}

fn rot_x(deg: f64) -> Mat3 {
    let (s, c) = deg.to_radians().sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
}

fn rot_z(deg: f64) -> Mat3 {
    let (s, c) = deg.to_radians().sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_ray_lands_on_the_centre_and_yaw_looks_right() {
        let cam = Camera::nominal(0.0, 90.0);
        let rot = cam.rotation();
        let (x, y) = cam.project(&rot, [0.0, 0.0, 1.0], 640.0, 360.0).unwrap();
        assert!((x - 319.5).abs() < 1e-9 && (y - 179.5).abs() < 1e-9);
        // 45 degrees right is the right edge of a 90-degree camera.
        let ray = [45f64.to_radians().sin(), 0.0, 45f64.to_radians().cos()];
        let (x, _) = cam.project(&rot, ray, 640.0, 360.0).unwrap();
        assert!((x - 639.5).abs() < 1e-9, "{x}");
        let right = Camera::nominal(45.0, 90.0);
        let (x, _) = right.project(&right.rotation(), ray, 640.0, 360.0).unwrap();
        assert!((x - 319.5).abs() < 1e-9, "{x}");
        // Pitch up: the horizon moves down in the frame.
        let up = Camera {
            pitch_deg: 2.0,
            ..cam
        };
        let (_, y) = up
            .project(&up.rotation(), [0.0, 0.0, 1.0], 640.0, 360.0)
            .unwrap();
        assert!(y > 179.5 + 10.0, "{y}");
    }

    #[test]
    fn cylinder_rays_are_linear_in_azimuth() {
        let cyl = Cylinder {
            width: 200,
            height: 100,
            f: 100.0,
            yaw0_deg: 10.0,
        };
        let r = cyl.ray(99.5, 49.5);
        assert!((r[0] - 10f64.to_radians().sin()).abs() < 1e-12 && r[1].abs() < 1e-12);
        assert!((cyl.hfov_deg() - 2f64.to_degrees()).abs() < 1e-9);
    }
}
